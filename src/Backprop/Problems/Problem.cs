using System.Numerics;
using Backprop.Health;
using Backprop.Nn;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Ops;

namespace Backprop.Problems;

/// <summary>A gradient of one of a layer's parameters, under the parameter's name (e.g. "weight").</summary>
public sealed record ParameterGradient<T>(string Name, Tensor<T> Gradient) where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>The answers for a problem: loss, output and the gradient of every layer's parameters (in order) and the input.</summary>
/// <param name="Loss">The loss; null for loss "none".</param>
/// <param name="Output">The network's output, batch × outputs.</param>
/// <param name="LayerGradients">For each layer, in order, the gradient of each of its parameters, in the layer's parameter order.</param>
/// <param name="InputGradient">∂L/∂x, batch × inputs.</param>
public sealed record GradientResult<T>(
    double? Loss,
    Tensor<T> Output,
    IReadOnlyList<IReadOnlyList<ParameterGradient<T>>> LayerGradients,
    Tensor<T> InputGradient) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Each layer's buffers after the forward pass (a training batch norm's updated running statistics), by name.</summary>
    public IReadOnlyList<IReadOnlyList<ParameterGradient<T>>> LayerBuffers { get; init; } = [];
}

/// <summary>A name of a value in a problem ("layers.0.weight", "input", …) that names none; the message starts with the quoted name.</summary>
public sealed class UnknownValueException(string message, string? paramName = null) : ArgumentException(message, paramName)
{
    /// <summary>The same failure, thrown without a parameter's name, said of the caller's parameter <paramref name="paramName"/>.</summary>
    internal UnknownValueException WithParamName(string paramName) => new(Message, paramName);
}

/// <summary>
/// A problem instantiated in precision <typeparamref name="T"/>: the network, the batch and the loss, recorded on
/// one tape. The tape is replayed for Jacobian rows and finite differences, so nothing is rebuilt.
/// </summary>
public sealed class Problem<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The problem of a problem file: its layers, batch and loss.</summary>
    public Problem(ProblemSpec spec, Catalog? catalog = null) : this(spec, BuildNetwork(spec, catalog ?? Catalog.Default), catalog) { }

    /// <summary>
    /// A problem on any network (layers of any kind): the batch, loss and targets come from <paramref name="spec"/>,
    /// whose own layers are ignored.
    /// </summary>
    public Problem(ProblemSpec spec, Sequential<T> network, Catalog? catalog = null)
    {
        Catalog = catalog ?? Catalog.Default;
        Spec = spec;
        Network = network;
        if (spec.Input.Length == 0 || spec.Input[0].Length != network.Inputs)
            throw new ShapeMismatchException($"the input has {(spec.Input.Length == 0 ? 0 : spec.Input[0].Length)} features per row but the network takes {network.Inputs}");
        // a forward pass in training mode moves running statistics: every pass starts from the file's values
        _initialBuffers = [.. network.Layers.SelectMany(l => l.Buffers).Select(b => (b.Value, b.Value.Clone()))];
        Tape = new Tape<T>();
        Input = Tape.Leaf(Tensor<T>.FromRows(spec.Input), requiresGrad: true, "x");
        Trace = Network.Forward(Input);
        var values = spec.Target is null ? null : Tape.Constant(Tensor<T>.FromRows(spec.Target), "t");
        var classes = spec.ClassTargets is null ? null : new ClassTargets(spec.ClassTargets);
        Loss = spec.Loss.Record(Trace.Output, values, classes, spec.Reduction, spec.LossSettings);
        if (Loss is not null) Loss.Name = "L";
    }

    /// <summary>The spec's layers, each made by its kind in the catalog and filled by parameter and buffer name.</summary>
    private static Sequential<T> BuildNetwork(ProblemSpec spec, Catalog catalog) =>
        new(spec.Layers.Select((l, i) =>
        {
            var kind = catalog.Layers.Find(l.Kind) ?? throw new ArgumentException($"layers[{i}]: unknown layer kind '{l.Kind}'");
            var shape = new LayerShape(l.Inputs, l.Outputs, kind.AffinePair ? l.Tensors.Any(t => t.Name == "weight") : l.HasBias)
            {
                Settings = l.Settings,
                Matrices = l.Matrices.ToDictionary(kv => kv.Key, kv => Tensor<double>.FromRows(kv.Value)),
            };
            var layer = kind.Create(shape, catalog.Activations.Create<T>(l.Activation));
            var targets = layer.Parameters.Select(p => (p.Name, Tensor: p.Value.Value)).Concat(layer.Buffers.Select(b => (b.Name, Tensor: b.Value)));
            foreach (var (name, tensor) in targets)
            {
                var t = l.Tensors.FirstOrDefault(x => x.Name == name) ?? throw new ArgumentException($"layers[{i}].{name}: missing");
                if (!tensor.SameShape(t.Shape)) throw new ShapeMismatchException($"layers[{i}].{name} is [{string.Join("×", t.Shape)}], expected {tensor.ShapeString}");
                var dst = tensor.Span;
                for (int j = 0; j < dst.Length; j++) dst[j] = T.CreateChecked(t.Values[j]);
            }
            return layer;
        }));

    /// <summary>Reads and validates the problem file at <paramref name="path"/> and builds its problem (see <see cref="ProblemFile.Load"/>).</summary>
    /// <exception cref="ProblemFormatException">The file cannot be read or does not describe a valid problem.</exception>
    /// <exception cref="ShapeMismatchException">The input rows do not fit the network's inputs.</exception>
    public static Problem<T> Load(string path, Catalog? catalog = null) => new(ProblemFile.Load(path, catalog), catalog);

    /// <summary>The problem as the file gave it, in float64.</summary>
    public ProblemSpec Spec { get; }
    /// <summary>The registries the problem's names were looked up in (a float64 reference copy uses the same).</summary>
    public Catalog Catalog { get; }
    /// <summary>The network, with the file's parameter and buffer values in <typeparamref name="T"/>.</summary>
    public Sequential<T> Network { get; }
    /// <summary>The tape that recorded the forward pass and the loss; every later pass replays it.</summary>
    public Tape<T> Tape { get; }
    /// <summary>The batch, batch × inputs, named "x"; a leaf that receives a gradient (∂L/∂x).</summary>
    public Var<T> Input { get; }
    /// <summary>Each layer's pre-activation and output on the tape, for derivations and <see cref="Resolve"/>.</summary>
    public ForwardTrace<T> Trace { get; }
    /// <summary>The network's output, batch × outputs.</summary>
    public Var<T> Output => Trace.Output;

    /// <summary>The loss node; null for loss "none", whose gradients are those of the sum of all outputs.</summary>
    public Var<T>? Loss { get; }

    /// <summary>The scalar that gradients are taken of: the loss, or Σ outputs for loss "none".</summary>
    public double Objective()
    {
        if (Loss is not null) return double.CreateTruncating(Loss.Value.Data[0]);
        double s = 0;
        foreach (var v in Output.Value.Data) s += double.CreateTruncating(v);
        return s;
    }

    private Tensor<T>? _onesSeed;
    private readonly (Tensor<T> Buffer, Tensor<T> Initial)[] _initialBuffers;

    /// <summary>Puts every buffer back to the problem's values, then runs the tape forward: what one forward pass gives.</summary>
    public void Forward()
    {
        foreach (var (buffer, initial) in _initialBuffers) initial.Span.CopyTo(buffer.Span);
        Tape.Forward();
    }

    /// <summary>Runs backward from the objective.</summary>
    public void Backward()
    {
        if (Loss is not null) Tape.Backward(Loss);
        else Tape.Backward(Output, _onesSeed ??= Tensor<T>.Ones(Output.Value.ShapeArray));
    }

    /// <summary>
    /// Runs a fresh forward and backward pass (buffers reset to the file's values) and returns copies of the loss, the output,
    /// every parameter's gradient, the buffers after the pass and ∂L/∂x: the answers a problem asks for.
    /// </summary>
    public GradientResult<T> Gradients()
    {
        Forward();
        Backward();
        var layers = Network.Layers.Select(l => (IReadOnlyList<ParameterGradient<T>>)
            [.. l.Parameters.Select(p => new ParameterGradient<T>(p.Name, p.Value.Grad.Clone()))]).ToList();
        var buffers = Network.Layers.Select(l => (IReadOnlyList<ParameterGradient<T>>)
            [.. l.Buffers.Select(b => new ParameterGradient<T>(b.Name, b.Value.Clone()))]).ToList();
        return new GradientResult<T>(
            Loss is null ? null : double.CreateTruncating(Loss.Value.Data[0]),
            Output.Value.Clone(), layers, Input.Grad.Clone()) { LayerBuffers = buffers };
    }

    /// <summary>
    /// Resolves "layers.I.NAME" (NAME one of the layer's parameters, e.g. weight or bias), "layers.I.output" or "input"
    /// to the value it names. Throws <see cref="UnknownValueException"/> with a message naming the fault.
    /// </summary>
    public Var<T> Resolve(string wrt)
    {
        if (wrt == "input") return Input;
        var parts = wrt.Split('.');
        if (parts.Length != 3 || parts[0] != "layers" || !int.TryParse(parts[1], out int i))
            throw new UnknownValueException($"'{wrt}': expected layers.I.weight, layers.I.bias, layers.I.output or input");
        if (i < 0 || i >= Network.Layers.Count)
            throw new UnknownValueException($"'{wrt}': layer {i} does not exist (the network has layers 0..{Network.Layers.Count - 1})");
        var layer = Network.Layers[i];
        if (parts[2] == "output") return Trace.Layers[i].Output;
        if (layer.Parameter(parts[2]) is { } p) return p;
        if (parts[2] == "bias") throw new UnknownValueException($"'{wrt}': layers[{i}] has no bias");
        throw new UnknownValueException(
            $"'{wrt}': expected {string.Join(", ", layer.Parameters.Select(q => q.Name))} or output after layers.{i}");
    }

    /// <summary>Runs forward and backward and measures every layer's gradient health (<see cref="GradientHealth"/>).</summary>
    public HealthReport Diagnose()
    {
        Forward();
        Backward();
        return GradientHealth.Analyze(Trace, Catalog.Activations);
    }

    /// <summary>
    /// d(flattened network output)/d(flattened <paramref name="wrt"/>), one reverse-mode pass per output element
    /// (rows of the Jacobian), flattening row-major.
    /// </summary>
    public Tensor<T> Jacobian(Var<T> wrt) => Backprop.Autodiff.Jacobian.Compute(Tape, Output, wrt);
}
