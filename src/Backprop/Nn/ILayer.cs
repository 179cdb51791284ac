using System.Numerics;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Ops;

namespace Backprop.Nn;

/// <summary>What a parameter is to its layer: health and initialisation treat weights, biases and the rest differently.</summary>
public enum ParameterRole
{
    /// <summary>A weight with fan-in and fan-out (out × in): drawn by the initialisation scheme, measured by health.</summary>
    Weight,
    /// <summary>Starts at zero.</summary>
    Bias,
    /// <summary>Starts at one (a scale).</summary>
    Scale,
}

/// <summary>A trained tensor of a layer, under its local name (saved as layers.{i}.{Name}).</summary>
public sealed record LayerParameter<T>(string Name, Var<T> Value, ParameterRole Role) where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>A tensor a layer keeps but does not train (running statistics), saved and loaded as layers.{i}.{Name}.</summary>
public sealed record LayerBuffer<T>(string Name, Tensor<T> Value) where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// The values one layer recorded in a forward pass: its input, its pre-activation (the value its activation was applied
/// to; the output itself for the identity or a layer without activation) and its output.
/// </summary>
public sealed record LayerTrace<T>(int Index, ILayer<T> Layer, Var<T> Input, Var<T> PreActivation, Var<T> Output)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The range of tape nodes the layer recorded: [FirstNode, FirstNode + NodeCount).</summary>
    public int FirstNode { get; init; }
    /// <summary>How many tape nodes the layer recorded (see <see cref="FirstNode"/>).</summary>
    public int NodeCount { get; init; }
}

/// <summary>What a layer's forward pass returns: its pre-activation and its output (the same value where no activation follows).</summary>
public readonly record struct LayerOutput<T>(Var<T> PreActivation, Var<T> Output) where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// One layer of a <see cref="Sequential{T}"/>. A layer kind says, here and in its <see cref="LayerKind"/>, everything
/// about itself: its forward pass on the tape, its named parameters and buffers, train/eval mode, its ONNX nodes, and
/// how it is summarised. Saving and loading go through the names of its parameters and buffers and its kind's
/// <see cref="LayerKind.Create{T}"/>, so a new kind needs no edit to model files, export, explain or health.
/// </summary>
public interface ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The name of the layer's kind in a <see cref="LayerKindRegistry"/>, e.g. "dense".</summary>
    string Kind { get; }
    /// <summary>Features the layer reads per sample: the width of its input [batch, Inputs].</summary>
    int Inputs { get; }
    /// <summary>Features the layer writes per sample: the width of its output [batch, Outputs].</summary>
    int Outputs { get; }

    /// <summary>The activation applied last (identity where there is none): explain, health and model files read it.</summary>
    Activation<T> Activation { get; }

    /// <summary>The trained tensors in a fixed order (the order of the model file and of the optimizer's state).</summary>
    IReadOnlyList<LayerParameter<T>> Parameters { get; }

    /// <summary>Tensors kept but not trained; saved and loaded with the parameters.</summary>
    IReadOnlyList<LayerBuffer<T>> Buffers { get; }

    /// <summary>Training or evaluation mode (for layers that behave differently, e.g. with running statistics).</summary>
    bool Training { get; set; }

    /// <summary>
    /// Whether <see cref="Training"/> changes what the forward pass computes (dropout, batch norm). A layer that says
    /// false computes the same in both modes, so <see cref="Sequential{T}.Predict"/> need not copy it to evaluate it;
    /// true (the default) is safe for any layer.
    /// </summary>
    bool ModeChangesForward => true;

    /// <summary>The values of its kind's saved <see cref="LayerKind.Settings"/> (eps, momentum, p), by name; empty for none.</summary>
    IReadOnlyDictionary<string, double> Settings => System.Collections.Immutable.ImmutableDictionary<string, double>.Empty;

    /// <summary>
    /// Seeds the layer's random draws (dropout's masks), continuing after <paramref name="draws"/> earlier ones, so a
    /// resumed run draws what an uninterrupted one would. Layers without randomness ignore it.
    /// </summary>
    void SeedRandom(ulong seed, long draws) { }

    /// <summary>The smallest batch the layer can train on in its current mode (2 for a training batch norm: one sample has no variance).</summary>
    int MinimumBatch => 1;

    /// <summary>Records the layer's computation on <paramref name="x"/>'s tape.</summary>
    LayerOutput<T> Forward(Var<T> x);

    /// <summary>
    /// The layer's forward pass for inference, compiled from its current values (the layer is in evaluation mode) for
    /// <paramref name="context"/>'s kernels; null where the layer is the identity at inference (dropout). A kind that
    /// compiles nothing runs its tape forward pass (<see cref="Inference.TapeInferenceStep{T}"/>).
    /// </summary>
    Inference.IInferenceStep<T>? CompileInference(Kernels.ComputeContext context) => new Inference.TapeInferenceStep<T>(this, context);

    /// <summary>
    /// Adds the layer's ONNX nodes reading <paramref name="input"/>. Tensors and intermediate values are named under
    /// <paramref name="prefix"/> (layers.{i}); the final value is named <paramref name="output"/> when given (the graph's
    /// output), else as the layer likes. Returns the name of the layer's output.
    /// </summary>
    string ExportOnnx(IOnnxGraph graph, string input, string prefix, string? output);

    /// <summary>A deep copy in another precision.</summary>
    ILayer<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut>;

    /// <summary>A one-line summary, e.g. "dense 784→512 relu".</summary>
    string Describe();
}

/// <summary>Conveniences over <see cref="ILayer{T}"/>.</summary>
public static class LayerExtensions
{
    /// <summary>The layer's parameter called <paramref name="name"/>, or null.</summary>
    public static Var<T>? Parameter<T>(this ILayer<T> layer, string name) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var p in layer.Parameters) if (p.Name == name) return p.Value;
        return null;
    }

    /// <summary>The layer's first parameter with role <see cref="ParameterRole.Weight"/> (what health measures), or null.</summary>
    public static Var<T>? MainWeight<T>(this ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var p in layer.Parameters) if (p.Role == ParameterRole.Weight) return p.Value;
        return null;
    }

    /// <summary>The layer's first parameter with role <see cref="ParameterRole.Bias"/>, or null.</summary>
    public static Var<T>? MainBias<T>(this ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var p in layer.Parameters) if (p.Role == ParameterRole.Bias) return p.Value;
        return null;
    }
}
