using System.Numerics;

namespace Backprop.Nn;

/// <summary>The values one forward pass recorded: the input, and each layer's pre-activation z and output h.</summary>
public sealed record ForwardTrace<T>(Var<T> Input, IReadOnlyList<Var<T>> Z, IReadOnlyList<Var<T>> H)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public Var<T> Output => H[^1];
}

/// <summary>A chain of dense layers: h₀ = x, h_{l+1} = f_l(h_l·W_lᵀ + b_l).</summary>
public sealed class Sequential<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public Sequential(IEnumerable<DenseLayer<T>> layers)
    {
        Layers = layers.ToArray();
        if (Layers.Count == 0) throw new ArgumentException("the network is empty: it needs at least one layer");
        for (int i = 1; i < Layers.Count; i++)
            if (Layers[i].Inputs != Layers[i - 1].Outputs)
                throw new ShapeMismatchException(
                    $"layers[{i}].weight is {Layers[i].Outputs}×{Layers[i].Inputs} but layers[{i - 1}] gives {Layers[i - 1].Outputs} outputs");
    }

    public IReadOnlyList<DenseLayer<T>> Layers { get; }
    public int Inputs => Layers[0].Inputs;
    public int Outputs => Layers[^1].Outputs;

    public IEnumerable<Var<T>> Parameters() => Layers.SelectMany(l => l.Parameters());

    public int ParameterCount => Parameters().Sum(p => p.Value.Length);

    public ForwardTrace<T> Forward(Var<T> x)
    {
        if (x.Value.Rank != 2 || x.Value.Dim(1) != Inputs)
            throw new ShapeMismatchException($"input is {x.ShapeString} but layers[0].weight expects {Inputs} inputs");
        var zs = new List<Var<T>>(Layers.Count);
        var hs = new List<Var<T>>(Layers.Count);
        var h = x;
        for (int i = 0; i < Layers.Count; i++)
        {
            var (z, hi) = Layers[i].Forward(h);
            z.Name = $"z{i + 1}";
            if (!ReferenceEquals(z, hi)) hi.Name = $"h{i + 1}";
            zs.Add(z);
            hs.Add(hi);
            h = hi;
        }
        return new ForwardTrace<T>(x, zs, hs);
    }

    /// <summary>
    /// Runs the network on a batch without recording gradients, on <paramref name="context"/> (null: the default).
    /// Safe to call from several threads at once: each call records its own tape and reads the parameters only.
    /// </summary>
    public Tensor<T> Predict(Tensor<T> x, Kernels.ComputeContext? context = null)
    {
        var tape = new Tape<T>(context ?? Kernels.ComputeContext.Default);
        var input = tape.Leaf(x, requiresGrad: false, "x");
        return Forward(input).Output.Value;
    }

    /// <summary>The same network in another precision (a deep copy).</summary>
    public Sequential<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut> =>
        new(Layers.Select(l => new DenseLayer<TOut>(
            l.Weight.Value.Cast<TOut>(),
            l.Bias?.Value.Cast<TOut>(),
            CastActivation<TOut>(l.Activation))));

    private static Activation<TOut> CastActivation<TOut>(Activation<T> a) where TOut : unmanaged, IFloatingPointIeee754<TOut> =>
        a switch
        {
            LeakyRelu<T> lr => new LeakyRelu<TOut>(lr.Slope),
            Elu<T> e => new Elu<TOut>(e.Alpha),
            _ => Activations.Create<TOut>(a.Name),
        };

    public Sequential<T> Clone() => Cast<T>();

    public override string ToString() =>
        string.Join(" → ", new[] { Inputs.ToString() }.Concat(Layers.Select(l => $"{l.Outputs} {l.Activation.Name}")));
}
