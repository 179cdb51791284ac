using System.Numerics;
using Backprop.Core;
using Backprop.Autodiff;

namespace Backprop.Nn;

/// <summary>The values one forward pass recorded: the input, and what each layer recorded (<see cref="LayerTrace{T}"/>).</summary>
public sealed record ForwardTrace<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The trace of a pass on <paramref name="input"/> whose layers recorded <paramref name="layers"/> (at least one), in order.</summary>
    public ForwardTrace(Var<T> input, IReadOnlyList<LayerTrace<T>> layers)
    {
        Input = input;
        Layers = layers;
        Z = [.. layers.Select(l => l.PreActivation)];
        H = [.. layers.Select(l => l.Output)];
    }

    /// <summary>The network's input x, [batch, inputs].</summary>
    public Var<T> Input { get; }
    /// <summary>What each layer recorded, in layer order.</summary>
    public IReadOnlyList<LayerTrace<T>> Layers { get; }
    /// <summary>Each layer's pre-activation z (the output itself where no activation follows).</summary>
    public IReadOnlyList<Var<T>> Z { get; }
    /// <summary>Each layer's output h.</summary>
    public IReadOnlyList<Var<T>> H { get; }
    /// <summary>The network's output: the last layer's h, [batch, outputs].</summary>
    public Var<T> Output => H[^1];

    /// <summary>The layer that recorded the tape node at <paramref name="nodeIndex"/>, or null (the loss, say).</summary>
    public LayerTrace<T>? LayerOfNode(int nodeIndex)
    {
        foreach (var l in Layers)
            if (nodeIndex >= l.FirstNode && nodeIndex < l.FirstNode + l.NodeCount) return l;
        return null;
    }
}

/// <summary>A chain of layers: h₀ = x, h_{l+1} = layer_l(h_l).</summary>
public sealed class Sequential<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The chain of <paramref name="layers"/> in order (the layers themselves, not copies).</summary>
    /// <exception cref="ArgumentException">There are no layers.</exception>
    /// <exception cref="ShapeMismatchException">A layer's <see cref="ILayer{T}.Inputs"/> is not the previous layer's <see cref="ILayer{T}.Outputs"/>.</exception>
    public Sequential(IEnumerable<ILayer<T>> layers)
    {
        Layers = layers.ToArray();
        if (Layers.Count == 0) throw new ArgumentException("the network is empty: it needs at least one layer");
        for (int i = 1; i < Layers.Count; i++)
            if (Layers[i].Inputs != Layers[i - 1].Outputs)
                throw new ShapeMismatchException(
                    $"layers[{i}] takes {Layers[i].Inputs} inputs but layers[{i - 1}] gives {Layers[i - 1].Outputs} outputs");
        Gradients = new GradientBuffer<T>([.. Parameters().Distinct(ReferenceEqualityComparer.Instance).Cast<Var<T>>()]);
        ParameterValues = new ParameterBuffer<T>(Gradients);
    }

    /// <summary>
    /// Every parameter's value in one contiguous buffer, laid out as <see cref="Gradients"/> (each parameter's
    /// <see cref="Var{T}.Value"/> is a view of its slice).
    /// </summary>
    public ParameterBuffer<T> ParameterValues { get; }

    /// <summary>
    /// Every parameter's gradient in one contiguous buffer, in parameter order: each parameter's <see cref="Var{T}.Grad"/>
    /// is a view of its slice. An all-reduce across processes or a fused optimizer works on it as one span.
    /// </summary>
    public GradientBuffer<T> Gradients { get; }

    /// <summary>The layers in order, at least one; saved as layers.{i}.</summary>
    public IReadOnlyList<ILayer<T>> Layers { get; }
    /// <summary>The input width: features per sample the first layer reads.</summary>
    public int Inputs => Layers[0].Inputs;
    /// <summary>The output width: features per sample the last layer writes.</summary>
    public int Outputs => Layers[^1].Outputs;

    /// <summary>Every layer's trained tensors, layer by layer in each layer's <see cref="ILayer{T}.Parameters"/> order.</summary>
    public IEnumerable<Var<T>> Parameters() => Layers.SelectMany(l => l.Parameters.Select(p => p.Value));

    /// <summary>Every parameter under its full name, layers.{i}.{name}, in the model file's order.</summary>
    public IEnumerable<(string Name, Var<T> Value)> NamedParameters() =>
        Layers.SelectMany((l, i) => l.Parameters.Select(p => ($"layers.{i}.{p.Name}", p.Value)));

    /// <summary>Trained values in all parameters together (PyTorch's <c>sum(p.numel() for p in model.parameters())</c>).</summary>
    public int ParameterCount => Parameters().Sum(p => p.Value.Length);

    /// <summary>Sets every layer's training (true) or evaluation (false) mode.</summary>
    public void SetTraining(bool training)
    {
        foreach (var l in Layers) l.Training = training;
    }

    /// <summary>
    /// Records every layer's forward pass on <paramref name="x"/>'s tape (in each layer's current mode) and returns
    /// what they recorded; on a tape that records gradients, backward from the output reaches every parameter.
    /// </summary>
    /// <param name="x">The input batch, [batch, <see cref="Inputs"/>].</param>
    /// <exception cref="ShapeMismatchException"><paramref name="x"/> is not [batch, <see cref="Inputs"/>].</exception>
    public ForwardTrace<T> Forward(Var<T> x)
    {
        if (x.Value.Rank != 2 || x.Value.Dim(1) != Inputs)
            throw new ShapeMismatchException($"input is {x.ShapeString} but layers[0] takes {Inputs} inputs");
        var traces = new List<LayerTrace<T>>(Layers.Count);
        var tape = x.Tape;
        var h = x;
        for (int i = 0; i < Layers.Count; i++)
        {
            int first = tape?.Nodes.Count ?? 0;
            var (z, hi) = Layers[i].Forward(h);
            // names for graphs and profiles only: code finds a layer's values through its LayerTrace
            z.Name ??= $"z{i + 1}";
            if (!ReferenceEquals(z, hi)) hi.Name ??= $"h{i + 1}";
            traces.Add(new LayerTrace<T>(i, Layers[i], h, z, hi) { FirstNode = first, NodeCount = (tape?.Nodes.Count ?? 0) - first });
            h = hi;
        }
        return new ForwardTrace<T>(x, traces);
    }

    /// <summary>
    /// Runs the network in evaluation mode (dropout off, batch norm on its running statistics) on a batch without
    /// recording gradients, on <paramref name="context"/> (null: the default). Safe to call from several threads at
    /// once: each call records its own tape and reads the parameters only. The layers' modes are left as they are: a
    /// network with a layer in training mode whose forward pass depends on it (<see cref="ILayer{T}.ModeChangesForward"/>:
    /// dropout, batch norm), when predicting from a training callback, say, is run as an evaluation-mode copy, so that
    /// its training goes on in training mode.
    /// </summary>
    public Tensor<T> Predict(Tensor<T> x, Kernels.ComputeContext? context = null)
    {
        // Switching the caller's layers to evaluation and back would race with another thread's prediction (and left
        // them in evaluation, mid-training, before); a copy costs one pass over the parameters, and only in training mode.
        var network = this;
        if (Layers.Any(l => l.Training && l.ModeChangesForward))
        {
            network = Clone();
            network.SetTraining(false);
        }
        var tape = new Tape<T>(context ?? Kernels.ComputeContext.Default);
        var input = tape.Leaf(x, requiresGrad: false, "x");
        return network.Forward(input).Output.Value;
    }

    /// <summary>The same network in another precision (a deep copy).</summary>
    public Sequential<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut> => new(Layers.Select(l => l.Cast<TOut>()));

    /// <summary>A deep copy in the same precision: training the copy leaves this network as it is.</summary>
    public Sequential<T> Clone() => Cast<T>();

    /// <summary>The widths and activations, e.g. "784 → 128 relu → 10 softmax".</summary>
    public override string ToString() =>
        string.Join(" → ", new[] { Inputs.ToString() }.Concat(Layers.Select(l => $"{l.Outputs} {l.Activation.Name}")));
}
