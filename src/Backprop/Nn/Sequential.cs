using System.Numerics;
using Backprop.Core;
using Backprop.Autodiff;

namespace Backprop.Nn;

/// <summary>The values one forward pass recorded: the input, and what each layer recorded (<see cref="LayerTrace{T}"/>).</summary>
public sealed record ForwardTrace<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public ForwardTrace(Var<T> input, IReadOnlyList<LayerTrace<T>> layers)
    {
        Input = input;
        Layers = layers;
        Z = [.. layers.Select(l => l.PreActivation)];
        H = [.. layers.Select(l => l.Output)];
    }

    public Var<T> Input { get; }
    public IReadOnlyList<LayerTrace<T>> Layers { get; }
    /// <summary>Each layer's pre-activation z (the output itself where no activation follows).</summary>
    public IReadOnlyList<Var<T>> Z { get; }
    /// <summary>Each layer's output h.</summary>
    public IReadOnlyList<Var<T>> H { get; }
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
    public Sequential(IEnumerable<ILayer<T>> layers)
    {
        Layers = layers.ToArray();
        if (Layers.Count == 0) throw new ArgumentException("the network is empty: it needs at least one layer");
        for (int i = 1; i < Layers.Count; i++)
            if (Layers[i].Inputs != Layers[i - 1].Outputs)
                throw new ShapeMismatchException(
                    $"layers[{i}] takes {Layers[i].Inputs} inputs but layers[{i - 1}] gives {Layers[i - 1].Outputs} outputs");
        Gradients = new GradientBuffer<T>([.. Parameters().Distinct(ReferenceEqualityComparer.Instance).Cast<Var<T>>()]);
    }

    /// <summary>
    /// Every parameter's gradient in one contiguous buffer, in parameter order: each parameter's <see cref="Var{T}.Grad"/>
    /// is a view of its slice. An all-reduce across processes or a fused optimizer works on it as one span.
    /// </summary>
    public GradientBuffer<T> Gradients { get; }

    public IReadOnlyList<ILayer<T>> Layers { get; }
    public int Inputs => Layers[0].Inputs;
    public int Outputs => Layers[^1].Outputs;

    public IEnumerable<Var<T>> Parameters() => Layers.SelectMany(l => l.Parameters.Select(p => p.Value));

    /// <summary>Every parameter under its full name, layers.{i}.{name}, in the model file's order.</summary>
    public IEnumerable<(string Name, Var<T> Value)> NamedParameters() =>
        Layers.SelectMany((l, i) => l.Parameters.Select(p => ($"layers.{i}.{p.Name}", p.Value)));

    public int ParameterCount => Parameters().Sum(p => p.Value.Length);

    /// <summary>Sets every layer's training (true) or evaluation (false) mode.</summary>
    public void SetTraining(bool training)
    {
        foreach (var l in Layers) l.Training = training;
    }

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
    /// Runs the network on a batch without recording gradients, on <paramref name="context"/> (null: the default).
    /// Safe to call from several threads at once: each call records its own tape and reads the parameters only.
    /// </summary>
    public Tensor<T> Predict(Tensor<T> x, Kernels.ComputeContext? context = null)
    {
        SetTraining(false);
        var tape = new Tape<T>(context ?? Kernels.ComputeContext.Default);
        var input = tape.Leaf(x, requiresGrad: false, "x");
        return Forward(input).Output.Value;
    }

    /// <summary>The same network in another precision (a deep copy).</summary>
    public Sequential<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut> => new(Layers.Select(l => l.Cast<TOut>()));

    public Sequential<T> Clone() => Cast<T>();

    public override string ToString() =>
        string.Join(" → ", new[] { Inputs.ToString() }.Concat(Layers.Select(l => $"{l.Outputs} {l.Activation.Name}")));
}
