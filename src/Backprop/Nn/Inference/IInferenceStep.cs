using System.Numerics;
using Backprop.Kernels;

namespace Backprop.Nn.Inference;

/// <summary>
/// One layer's forward pass for inference, compiled from the layer's values in evaluation mode
/// (<see cref="ILayer{T}.CompileInference"/>): no tape, no gradients, its constants prepared once (weights packed for
/// the GEMM, running statistics turned into a scale). Immutable once compiled: any number of threads may run it at
/// once, each with its own scratch and state (which <see cref="InferenceNetwork{T}"/> keeps per thread).
/// </summary>
public interface IInferenceStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Features per row of the step's input x.</summary>
    int Inputs { get; }
    /// <summary>Features per row of the step's output y.</summary>
    int Outputs { get; }

    /// <summary>Values of T of scratch one call on <paramref name="rows"/> rows needs (besides its output).</summary>
    int ScratchLength(int rows) => 0;

    /// <summary>A calling thread's mutable helpers for this step (made once per thread and reused), or null.</summary>
    object? CreateState() => null;

    /// <summary>
    /// y[rows × Outputs] = the layer applied to x[rows × Inputs]; <paramref name="scratch"/> holds at least
    /// <see cref="ScratchLength"/> values and <paramref name="state"/> is this thread's <see cref="CreateState"/>.
    /// </summary>
    void Run(ReadOnlySpan<T> x, Span<T> y, int rows, Span<T> scratch, object? state);
}

/// <summary>
/// The step of a layer kind that compiles nothing of its own: its tape forward pass, on a tape made for each call. It
/// gives the tape's results, with the tape's allocations; a kind that wants speed compiles its own step.
/// </summary>
public sealed class TapeInferenceStep<T>(ILayer<T> layer, ComputeContext context) : IInferenceStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public int Inputs => layer.Inputs;
    /// <inheritdoc/>
    public int Outputs => layer.Outputs;

    /// <summary>
    /// Records the layer's forward pass on a new tape over a copy of x and copies its output to y. Allocates the tape
    /// and its tensors on each call; uses no scratch or state.
    /// </summary>
    public void Run(ReadOnlySpan<T> x, Span<T> y, int rows, Span<T> scratch, object? state)
    {
        var tape = new Autodiff.Tape<T>(context);
        var input = tape.Leaf(new Core.Tensor<T>(x[..(rows * Inputs)].ToArray(), rows, Inputs), requiresGrad: false, "x");
        layer.Forward(input).Output.Value.Span.CopyTo(y);
    }
}
