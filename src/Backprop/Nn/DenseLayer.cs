using System.Numerics;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Ops;
using Backprop.Kernels;
using Backprop.Nn.Inference;

namespace Backprop.Nn;

/// <summary>
/// A fully connected layer h = f(x·Wᵀ + b). The weight is stored out × in, as PyTorch's nn.Linear stores it;
/// the bias is optional. Saved as layers.{i}.weight and layers.{i}.bias; exported as an ONNX Gemm (transB = 1)
/// followed by the activation's nodes.
/// </summary>
public sealed class DenseLayer<T> : ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A dense layer over the given tensors (used as they are, not copied).</summary>
    /// <param name="weight">The weight, [out, in].</param>
    /// <param name="bias">The bias, [out]; null for a layer without bias.</param>
    /// <param name="activation">f, applied last (the identity for none).</param>
    /// <exception cref="ShapeMismatchException">The weight is not rank 2, or the bias is not [out].</exception>
    public DenseLayer(Tensor<T> weight, Tensor<T>? bias, Activation<T> activation)
    {
        if (weight.Rank != 2) throw new ShapeMismatchException($"weight is {weight.ShapeString}, expected out × in");
        if (bias is not null && (bias.Rank != 1 || bias.Length != weight.Dim(0)))
            throw new ShapeMismatchException($"bias is {bias.ShapeString} but the weight is {weight.ShapeString}: expected [{weight.Dim(0)}]");
        Weight = Var<T>.Parameter(weight, "W");
        Bias = bias is null ? null : Var<T>.Parameter(bias, "b");
        Activation = activation;
        Parameters = Bias is null
            ? [new("weight", Weight, ParameterRole.Weight)]
            : [new("weight", Weight, ParameterRole.Weight), new("bias", Bias, ParameterRole.Bias)];
    }

    /// <summary>
    /// A dense layer of zeros, <paramref name="inputs"/> → <paramref name="outputs"/>: for an initialisation scheme or a
    /// model file to fill.
    /// </summary>
    public DenseLayer(int inputs, int outputs, Activation<T> activation, bool bias = true)
        : this(new Tensor<T>(outputs, inputs), bias ? new Tensor<T>(outputs) : null, activation) { }

    /// <inheritdoc/>
    public string Kind => DenseKind.KindName;
    /// <summary>W, [out, in]: a trained parameter, saved as layers.{i}.weight.</summary>
    public Var<T> Weight { get; }
    /// <summary>b, [out], or null for a layer without bias: saved as layers.{i}.bias.</summary>
    public Var<T>? Bias { get; }
    /// <inheritdoc/>
    public Activation<T> Activation { get; }
    /// <inheritdoc/>
    public int Inputs => Weight.Value.Dim(1);
    /// <inheritdoc/>
    public int Outputs => Weight.Value.Dim(0);
    /// <summary>The weight, then the bias when there is one.</summary>
    public IReadOnlyList<LayerParameter<T>> Parameters { get; }
    /// <summary>None: a dense layer keeps no untrained state.</summary>
    public IReadOnlyList<LayerBuffer<T>> Buffers => [];

    /// <summary>A dense layer computes the same in both modes.</summary>
    public bool Training { get; set; } = true;

    /// <summary>False: a dense layer computes the same in both modes.</summary>
    public bool ModeChangesForward => false;

    /// <summary>Records z = x·Wᵀ + b and h = f(z); h is z itself for the identity.</summary>
    public LayerOutput<T> Forward(Var<T> x)
    {
        var z = Functional.Linear(x, Weight, Bias);
        var h = Activation.IsIdentity ? z : Functional.Activate(z, Activation);
        return new(z, h);
    }

    /// <summary>z = x·Wᵀ + b with W packed once for the context's GEMM, and f applied to each block of z as it is finished.</summary>
    public IInferenceStep<T>? CompileInference(ComputeContext context) =>
        new DenseInferenceStep<T>(new PackedMatrix<T>(context, Outputs, Inputs, Weight.Value.Span), Bias?.Value.Span.ToArray(), Activation, context);

    /// <summary>An ONNX Gemm (transB = 1) on the weight and bias initializers, then the activation's nodes.</summary>
    public string ExportOnnx(IOnnxGraph graph, string input, string prefix, string? output)
    {
        var gemmInputs = new List<string> { input, graph.Initializer($"{prefix}.weight", Weight.Value) };
        if (Bias is not null) gemmInputs.Add(graph.Initializer($"{prefix}.bias", Bias.Value));
        bool identity = Activation.IsIdentity;
        string z = graph.Node("Gemm", gemmInputs, identity && output is not null ? output : $"{prefix}.z", OnnxAttribute.Int("transB", 1));
        return identity ? z : Activation.EmitOnnx(graph, z, output ?? $"{prefix}.h", prefix);
    }

    /// <inheritdoc/>
    public ILayer<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut> =>
        new DenseLayer<TOut>(Weight.Value.Cast<TOut>(), Bias?.Value.Cast<TOut>(), Activation.Cast<TOut>());

    /// <inheritdoc/>
    public string Describe() => $"dense {Inputs}→{Outputs} {Activation.Name}{(Bias is null ? ", no bias" : "")}";

    /// <summary>The shape and activation, e.g. "DenseLayer(784→512, relu)".</summary>
    public override string ToString() => $"DenseLayer({Inputs}→{Outputs}, {Activation.Name}{(Bias is null ? ", no bias" : "")})";
}

/// <summary>
/// A dense layer at inference: C starts as the bias in each row and the product with the packed weight is added (as
/// the tape's linear op adds it), and f runs on each finished block while it is in cache; f's input z goes to scratch
/// only when f is neither the identity nor applied by the product's kernels (relu).
/// </summary>
public sealed unsafe class DenseInferenceStep<T>(PackedMatrix<T> weight, T[]? bias, Activation<T> activation, ComputeContext context)
    : IInferenceStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public int Inputs => weight.K;
    /// <inheritdoc/>
    public int Outputs => weight.N;

    /// <summary>Whether the product's kernels apply f themselves (<see cref="Activation{T}.KernelEpilogue"/>): h is written directly.</summary>
    private bool InKernel => activation.IsIdentity || activation.KernelEpilogue != GemmEpilogue.None;

    /// <summary>rows × Outputs for z when f runs after the product (not the identity, not in the kernels), otherwise 0.</summary>
    public int ScratchLength(int rows) => InKernel ? 0 : rows * Outputs;

    /// <summary>The block finisher that applies f to each finished block of z (null when the kernels apply f, or for the identity).</summary>
    public object? CreateState() => InKernel ? null : new ActivationBlockFinish<T>();

    /// <inheritdoc/>
    public void Run(ReadOnlySpan<T> x, Span<T> y, int rows, Span<T> scratch, object? state)
    {
        if (InKernel)
        {
            // relu in the kernels' store: on `bench infer` 784-512-512-10 at 1 thread, batch 128 and 1024, the pass
            // over z that it replaces took about 1% of the time (perf), and z no longer goes through memory
            weight.Multiply(context, rows, x, y, bias, epilogue: activation.KernelEpilogue);   // None for the identity
            return;
        }
        var z = scratch[..(rows * Outputs)];
        if (!InferenceActivation.Fuses(activation))
        {
            weight.Multiply(context, rows, x, z, bias);
            InferenceActivation.Apply(activation, z, y, Outputs);
            return;
        }
        var finish = (ActivationBlockFinish<T>)state!;
        fixed (T* pz = z)
        fixed (T* py = y)
        {
            finish.Set(activation, pz, py, Outputs);
            try { weight.Multiply(context, rows, x, z, bias, finish); }
            finally { finish.Clear(); }
        }
    }
}
