using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Explain;

/// <summary>How the backward pass is written.</summary>
public enum Notation
{
    /// <summary>δ_l = ∂L/∂z_l with row vectors per sample: δ_l = (δ_{l+1}·W_{l+1}) ⊙ σ′(z_l), ∂L/∂W_l = δ_lᵀ·h_{l−1}.</summary>
    Columns,
    /// <summary>The homework's row-vector recurrences: db_l = dy_{l+1}·diag(S′(A_l y_l + b_l)), dA_l = y_l·db_l, dy_l = db_l·A_l.</summary>
    Rows,
}

/// <summary>One named factor of a step, e.g. σ′(z₂) with its definition and its numbers.</summary>
public sealed record Factor(string Symbol, string Definition, Tensor<double> Value);

/// <summary>
/// One equation of a derivation: its name (e.g. "δ₂"), the formula with the names of this network, the shapes,
/// the numbers, the factors that went into it and, where the tape holds the same quantity, how far the value
/// computed by the printed rule lies from the tape's own (a relative deviation; null when there is nothing to compare).
/// </summary>
public sealed record DerivationStep(
    string Name,
    string Formula,
    string Shape,
    Tensor<double> Value,
    IReadOnlyList<Factor> Factors,
    IReadOnlyList<string> Rules,
    string? Note,
    double? TapeDeviation);

/// <summary>The central-difference check of the derivation's final gradient.</summary>
public sealed record FiniteDifferenceCheck(string DType, double Step, double MaxAbsError, double MaxRelError, double AbsTolerance, double RelTolerance, bool Passed)
{
    /// <summary>How many of the gradient's <see cref="Total"/> elements were checked (all, or an even sample of a large one); 0, 0: not recorded.</summary>
    public int Checked { get; init; }
    /// <summary>Elements of the gradient checked against (see <see cref="Checked"/>); 0 when not recorded.</summary>
    public int Total { get; init; }
}

/// <summary>
/// A derivation generated from a problem's recorded graph: the forward equations, the backward steps from the
/// objective to the requested leaf, optionally the Jacobian in matrix-product form and a finite-difference check.
/// Renderers (text, markdown, LaTeX) and tests all read this one structure.
/// </summary>
public sealed record Derivation(
    string ProblemName,
    string DType,
    string Wrt,
    string Objective,
    Notation Notation,
    IReadOnlyList<string> Notes,
    IReadOnlyList<DerivationStep> Forward,
    IReadOnlyList<DerivationStep> Backward,
    IReadOnlyList<DerivationStep> Jacobian,
    FiniteDifferenceCheck? FiniteDifference)
{
    /// <summary>
    /// The LaTeX of the network's activation symbols that are words (e.g. ("relu", "\\operatorname{relu}")), from each
    /// activation's <see cref="Activation{T}.LatexSymbol"/>: how the renderer spells activations it was not built with.
    /// </summary>
    public IReadOnlyList<(string Symbol, string Latex)> SymbolLatex { get; init; } = [];

    /// <summary>The requested gradient: the last backward step.</summary>
    public DerivationStep Result => Backward[^1];

    /// <summary>The names of the backward steps in order, the requested gradient last, e.g. δ₃, δ₂, δ₁, ∂L/∂W₁.</summary>
    public IReadOnlyList<string> BackwardNames => Backward.Select(s => s.Name).ToList();

    /// <summary>The largest deviation of any step from the tape's own gradients (0 when nothing was compared).</summary>
    public double MaxTapeDeviation =>
        Backward.Concat(Jacobian).Select(s => s.TapeDeviation ?? 0).DefaultIfEmpty(0).Max();
}
