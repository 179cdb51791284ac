using System.Numerics;
using Backprop.Core;
using Backprop.Kernels;

namespace Backprop.Autodiff;

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

    /// <summary>
    /// Computes the output from the inputs' current values into <paramref name="output"/>, with any kernels on
    /// <paramref name="context"/>: the context of the tape that runs the op, so an op recorded on two tapes runs on
    /// each tape's threads.
    /// </summary>
    public abstract void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output);

    /// <summary>
    /// Propagates <c>output.Grad</c> to every input that requires a gradient, through
    /// <see cref="Var{T}.GradTarget"/> (overwrite on first write, accumulate afterwards), with any kernels on
    /// <paramref name="context"/>.
    /// </summary>
    public abstract void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output);

    /// <summary>
    /// Computes this op's output and, in the same pass, <paramref name="next"/>'s output from it, when
    /// <paramref name="next"/> is an op that reads only this op's output and this op knows how to fuse it; false (and
    /// nothing computed) otherwise. Results must equal running the two ops one after the other, bit for bit.
    /// </summary>
    public virtual bool TryForwardFused(ComputeContext context, Var<T>[] inputs, Tensor<T> output, Op<T> next, Tensor<T> nextOutput) => false;

    /// <summary>
    /// The backward pass, with the gradient of <c>inputs[0]</c> carried on through <paramref name="producer"/>, the op
    /// that made <c>inputs[0]</c> from <paramref name="producerInput"/>: writes both gradients (overwriting, never
    /// accumulating: the tape fuses only where each is the only write) so the producer's own backward is skipped.
    /// False, with nothing written, when this op cannot fuse that producer.
    /// </summary>
    public virtual bool TryBackwardFused(ComputeContext context, Var<T>[] inputs, Var<T> output, Op<T> producer, Var<T> producerInput) => false;

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {Formula}";
}
