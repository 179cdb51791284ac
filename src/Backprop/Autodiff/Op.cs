using System.Numerics;

namespace Backprop;

/// <summary>
/// One differentiable operation: its forward computation, its backward rule and the formulas for both
/// live together. The formula text is data: <c>explain</c> prints it.
/// </summary>
public abstract class Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A short name, e.g. "matmul".</summary>
    public abstract string Name { get; }

    /// <summary>The forward formula in terms of the input names of <see cref="InputNames"/>, e.g. "Y = A·B".</summary>
    public abstract string Formula { get; }

    /// <summary>Names of the operands in the formulas, e.g. ["A", "B"].</summary>
    public abstract IReadOnlyList<string> InputNames { get; }

    /// <summary>The backward rule for each operand, e.g. "dA = dY·Bᵀ".</summary>
    public abstract IReadOnlyList<string> GradFormulas { get; }

    /// <summary>The output shape for the given inputs; throws <see cref="ShapeMismatchException"/> naming the shapes.</summary>
    public abstract int[] OutputShape(Var<T>[] inputs);

    /// <summary>Computes the output from the inputs' current values into <paramref name="output"/>.</summary>
    public abstract void Forward(Var<T>[] inputs, Tensor<T> output);

    /// <summary>
    /// Propagates <c>output.Grad</c> to every input that requires a gradient, through
    /// <see cref="Var{T}.GradTarget"/> (overwrite on first write, accumulate afterwards).
    /// </summary>
    public abstract void Backward(Var<T>[] inputs, Var<T> output);

    public override string ToString() => $"{Name}: {Formula}";
}
