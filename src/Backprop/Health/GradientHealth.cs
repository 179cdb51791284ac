using System.Globalization;
using System.Numerics;
using Backprop.Nn;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Health;

/// <summary>
/// One layer's gradient statistics on one batch, for <c>diagnose</c> and training diagnostics alike. Layers are
/// numbered from 1, as in derivations and messages (layers.0 is layer 1). A fraction is null where it does not apply
/// (dead units for an activation whose units cannot die, saturation for one that does not saturate).
/// </summary>
/// <param name="Layer">The layer's number, from 1.</param>
/// <param name="Activation">The activation's registry name ("relu", "sigmoid" …).</param>
/// <param name="WeightGradientNorm">‖∂L/∂W‖, the Frobenius norm of the weight's gradient; 0 for a layer without a weight.</param>
/// <param name="WeightNorm">‖W‖, the Frobenius norm of the weight; 0 for a layer without a weight.</param>
/// <param name="OutputGradientNorm">‖∂L/∂h‖, the Frobenius norm of the gradient that reaches the layer's output.</param>
/// <param name="DeadFraction">The fraction (0 to 1) of units whose pre-activation is ≤ 0 for the whole batch (<see cref="GradientHealth.DeadFraction{T}"/>); null when the activation's units cannot die.</param>
/// <param name="SaturatedFraction">The fraction (0 to 1) of entries in the flat part of a saturating activation (<see cref="GradientHealth.SaturatedFraction{T}"/>); null when the activation does not saturate.</param>
public sealed record LayerHealth(
    int Layer,
    string Activation,
    double WeightGradientNorm,
    double WeightNorm,
    double OutputGradientNorm,
    double? DeadFraction,
    double? SaturatedFraction)
{
    /// <summary>‖update‖ / ‖W‖ of the optimizer step that followed the measurement (training only).</summary>
    public double? UpdateRatio { get; init; }

    /// <summary>The layer's kind ("dense", "layernorm", "dropout" …).</summary>
    public string Kind { get; init; } = DenseKind.KindName;

    /// <summary>
    /// Whether the layer has a weight (<see cref="ParameterRole.Weight"/>); false for dropout and norm layers, whose
    /// weight norms read 0 and which the vanishing/exploding ratio leaves out.
    /// </summary>
    public bool HasWeight { get; init; } = true;

    /// <summary>‖∂L/∂γ‖ and ‖γ‖ of a norm layer's scale (<see cref="ParameterRole.Scale"/>); null for a layer without one.</summary>
    public double? ScaleGradientNorm { get; init; }
    /// <summary>‖γ‖, the Frobenius norm of a norm layer's scale (<see cref="ParameterRole.Scale"/>); null for a layer without one.</summary>
    public double? ScaleNorm { get; init; }
}

/// <summary>
/// The verdict of <see cref="GradientHealth.Judge"/>: the layers' measurements, the ratio that decides vanishing and
/// exploding gradients, and one plain-language line for people.
/// </summary>
/// <param name="Layers">The measurements judged, in layer order.</param>
/// <param name="ShrinkFactor">
/// ‖∂L/∂W‖ of the last weighted layer over that of the first: ≥ <see cref="GradientHealth.RatioThreshold"/> means the
/// gradient vanishes on its way back, ≤ 1/<see cref="GradientHealth.RatioThreshold"/> that it explodes; +∞ when the
/// first layer gets no gradient at all, 1 when neither gets one.
/// </param>
/// <param name="Vanishing">Whether the gradient shrinks by at least <see cref="GradientHealth.RatioThreshold"/> (needs two weighted layers).</param>
/// <param name="Exploding">Whether the gradient grows by at least <see cref="GradientHealth.RatioThreshold"/> (needs two weighted layers).</param>
/// <param name="Healthy">True when there are no findings at all (also none from the caller's extra findings).</param>
/// <param name="Verdict">The findings and then the distinct advice, joined by "; "; or a "healthy: …" line.</param>
public sealed record HealthReport(IReadOnlyList<LayerHealth> Layers, double ShrinkFactor, bool Vanishing, bool Exploding, bool Healthy, string Verdict);

/// <summary>
/// Diagnoses the gradient flow of one backward pass: per-layer gradient and weight norms, dead ReLUs and saturated
/// sigmoid/tanh units, and a plain-language verdict. Reads only values and gradients on the tape, so training can
/// call it on any recorded step.
/// </summary>
public static class GradientHealth
{
    /// <summary>Gradient norms that change by more than this factor across the network count as vanishing or exploding.</summary>
    public const double RatioThreshold = 1e3;

    /// <summary>A unit is saturated when its derivative is below 1% of the activation's maximum derivative.</summary>
    public const double SaturationFraction = 0.01;

    /// <summary>Fractions of dead or saturated units above this are reported.</summary>
    public const double ReportFraction = 0.5;

    /// <summary>Measures and judges every layer of a forward pass whose backward pass has run.</summary>
    /// <param name="forward">The layers' traces of a forward pass; its backward pass must have filled the gradients.</param>
    /// <param name="activations">The registry that names the activations' units in the verdict; <see cref="ActivationRegistry.Default"/> when null.</param>
    public static HealthReport Analyze<T>(ForwardTrace<T> forward, ActivationRegistry? activations = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var layers = new List<LayerHealth>();
        foreach (var trace in forward.Layers) layers.Add(Measure(trace));
        return Judge(layers, activations: activations);
    }

    /// <summary>
    /// One layer's health from its trace after the backward pass: its kind, the norms of its weight (and, for a norm
    /// layer, of its scale) and of their gradients, and its dead and saturated fractions. <c>diagnose</c> and the
    /// training diagnostics both measure a layer here.
    /// </summary>
    public static LayerHealth Measure<T>(LayerTrace<T> trace) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var act = trace.Layer.Activation;
        var z = trace.PreActivation.Value;
        return Measure(trace.Layer, trace.Index, trace.Output.HasGrad ? trace.Output.Grad.FrobeniusNorm() : 0,
            act.CanDie ? DeadFraction(z) : null, SaturatedFraction(act, z, trace.Output.Value));
    }

    /// <summary>
    /// One layer's health from measurements of its units made elsewhere (over the rows of several processes, say) and
    /// its parameters: its kind, the norms of its weight (and, for a norm layer, of its scale) and of their gradients.
    /// </summary>
    /// <param name="layer">The layer, whose parameters and gradients are read.</param>
    /// <param name="index">Its index in the network, from 0.</param>
    /// <param name="outputGradientNorm">‖∂L/∂h‖ of its output.</param>
    /// <param name="deadFraction">See <see cref="DeadFraction{T}"/>; null when its units cannot die.</param>
    /// <param name="saturatedFraction">See <see cref="SaturatedFraction{T}"/>; null when its activation does not saturate.</param>
    public static LayerHealth Measure<T>(ILayer<T> layer, int index, double outputGradientNorm, double? deadFraction, double? saturatedFraction)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(layer);
        var weight = layer.MainWeight();
        var scale = layer.Parameters.FirstOrDefault(p => p.Role == ParameterRole.Scale)?.Value;
        return new LayerHealth(index + 1, layer.Activation.Name,
            weight is null ? 0 : weight.Grad.FrobeniusNorm(), weight is null ? 0 : weight.Value.FrobeniusNorm(),
            outputGradientNorm, deadFraction, saturatedFraction)
        {
            Kind = layer.Kind,
            HasWeight = weight is not null,
            ScaleGradientNorm = scale?.Grad.FrobeniusNorm(),
            ScaleNorm = scale?.Value.FrobeniusNorm(),
        };
    }

    /// <summary>
    /// Whether each unit (column of <paramref name="z"/>, rows × units) is alive, its pre-activation above 0 for some
    /// row: 1 or 0 into <paramref name="alive"/>. A unit is dead (<see cref="DeadFraction{T}"/>) when it is alive for no row.
    /// </summary>
    public static void AliveUnits<T>(Tensor<T> z, Span<double> alive) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(z);
        int rows = z.Rows, cols = z.Cols;
        if (alive.Length != cols) throw new ArgumentException($"{alive.Length} slots for {cols} units", nameof(alive));
        var data = z.Span;
        for (int j = 0; j < cols; j++)
        {
            bool on = false;
            for (int i = 0; i < rows && !on; i++) on = data[i * cols + j] > T.Zero;
            alive[j] = on ? 1 : 0;
        }
    }

    /// <summary>
    /// The entries of a saturating activation's output whose derivative is below <see cref="SaturationFraction"/> of its
    /// maximum, and all entries: <see cref="SaturatedFraction{T}"/> is their quotient. Null for an activation that does not saturate.
    /// </summary>
    public static (long Saturated, long Entries)? SaturatedCount<T>(Activation<T> activation, Tensor<T> z, Tensor<T> h) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(activation);
        ArgumentNullException.ThrowIfNull(z);
        ArgumentNullException.ThrowIfNull(h);
        if (activation.MaxDerivative is not double max) return null;
        var d = new T[z.Length];
        activation.Derivative(z.Data, h.Data, d);
        return (d.Count(v => double.CreateTruncating(v) < SaturationFraction * max), d.Length);
    }

    /// <summary>The fraction of units whose pre-activation is ≤ 0 for every sample of the batch: no gradient reaches their weights.</summary>
    /// <param name="z">The pre-activations, rows × units (one row a sample).</param>
    /// <returns>Dead units over all units, 0 to 1; 0 for a tensor without columns.</returns>
    public static double DeadFraction<T>(Tensor<T> z) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var alive = new double[z.Cols];
        AliveUnits(z, alive);
        return DeadFraction(alive);
    }

    /// <summary>The fraction of units that <paramref name="alive"/> (one slot a unit, 0 for a unit alive on no row; see
    /// <see cref="AliveUnits{T}"/>, or such flags summed over several sets of rows) says are dead; 0 for no units.</summary>
    public static double DeadFraction(ReadOnlySpan<double> alive) => alive.Length == 0 ? 0 : (double)alive.Count(0.0) / alive.Length;

    /// <summary>
    /// For a saturating activation (<see cref="Activation{T}.MaxDerivative"/>: σ′ ≤ 0.25, tanh′ ≤ 1): the fraction of
    /// entries whose derivative is below 1% of that maximum; null for activations that do not saturate.
    /// </summary>
    public static double? SaturatedFraction<T>(Activation<T> activation, Tensor<T> z, Tensor<T> h) where T : unmanaged, IFloatingPointIeee754<T> =>
        SaturatedCount(activation, z, h) is not var (saturated, entries) ? null : entries == 0 ? 0 : (double)saturated / entries;

    private static string Pct(double f) => (100 * f).ToString("0", CultureInfo.InvariantCulture) + "%";
    private static string Sci(double v) => v.ToString("0.0e+0", CultureInfo.InvariantCulture);

    /// <summary>
    /// The plain-language verdict on a set of layer measurements, for <c>diagnose</c> and training diagnostics alike.
    /// <paramref name="extra"/> adds findings only the caller can measure, each with its advice.
    /// </summary>
    public static HealthReport Judge(IReadOnlyList<LayerHealth> layers, IEnumerable<(string Finding, string Advice)>? extra = null,
        ActivationRegistry? activations = null)
    {
        activations ??= ActivationRegistry.Default;
        string Units(string activation) => activations.Find(activation)?.Create<double>().DisplayName ?? activation;
        // the ratio compares weights' gradients: dropout and norm layers (no weight) are left out of it
        var weighted = layers.Where(l => l.HasWeight).ToList();
        var first = weighted.Count > 0 ? weighted[0] : layers[0];
        var last = weighted.Count > 0 ? weighted[^1] : layers[^1];
        double shrink = first.WeightGradientNorm > 0 ? last.WeightGradientNorm / first.WeightGradientNorm
            : last.WeightGradientNorm > 0 ? double.PositiveInfinity : 1;
        bool vanishing = weighted.Count > 1 && shrink >= RatioThreshold;
        bool exploding = weighted.Count > 1 && shrink <= 1 / RatioThreshold;
        var findings = new List<string>();
        var advice = new List<string>();
        if (vanishing)
        {
            findings.Add(double.IsPositiveInfinity(shrink)
                ? $"layer {first.Layer} receives no gradient at all: vanishing gradients"
                : $"gradient norm shrinks {Sci(shrink)}× from layer {last.Layer} to layer {first.Layer}: vanishing gradients");
            // a saturating activation is one whose saturation was measured
            bool squashing = layers.Any(l => l.SaturatedFraction is not null);
            double meanWeightNorm = weighted.Average(l => l.WeightNorm);
            if (squashing && layers.All(l => (l.SaturatedFraction ?? 0) < ReportFraction) && meanWeightNorm < 1)
                findings.Add($"without saturation, σ′ ≤ 0.25 (tanh′ ≤ 1) times small weights (mean ‖W‖ = {meanWeightNorm:0.00}) shrinks δ at every layer");
            if (squashing)
                advice.Add("consider ReLU/He init or smaller depth");
            else advice.Add("consider He init, residual connections or smaller depth");
        }
        if (exploding)
        {
            findings.Add($"gradient norm grows {Sci(1 / shrink)}× from layer {last.Layer} to layer {first.Layer}: exploding gradients");
            advice.Add("consider smaller initial weights or gradient clipping");
        }
        foreach (var l in layers)
        {
            if (l.SaturatedFraction is double s && s >= ReportFraction)
                findings.Add($"{Pct(s)} of layer-{l.Layer} {l.Activation} units are saturated");
            if (l.DeadFraction is double d && d >= ReportFraction)
            {
                findings.Add($"{Pct(d)} of layer-{l.Layer} {Units(l.Activation)} units are dead (z ≤ 0 for the whole batch)");
                advice.Add("consider leaky_relu, a smaller learning rate or He init");
            }
        }
        foreach (var (finding, hint) in extra ?? [])
        {
            findings.Add(finding);
            advice.Add(hint);
        }
        bool healthy = findings.Count == 0;
        string verdict = healthy
            ? $"healthy: gradient norms stay within {Sci(RatioThreshold)}× across {layers.Count} layers, no layer is mostly dead or saturated"
            : string.Join("; ", findings.Concat(advice.Distinct()));
        return new HealthReport(layers, shrink, vanishing, exploding, healthy, verdict);
    }
}
