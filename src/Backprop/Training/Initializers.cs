using System.Numerics;
using Backprop.Nn;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Training;

/// <summary>
/// Weight initialisation: Glorot/Xavier for saturating activations, He/Kaiming for ReLU-like ones. Which one
/// <see cref="InitKind.Default"/> means, and Xavier's gain, are facts of the activation
/// (<see cref="Activation{T}.PreferredInit"/>, <see cref="Activation{T}.InitGain"/>).
/// </summary>
public static class Initializers
{
    /// <summary>The initialisation named <paramref name="name"/>: default (or auto), xavier_uniform, xavier_normal,
    /// he_uniform, he_normal, with the aliases glorot_uniform, xavier, glorot_normal, kaiming_uniform, kaiming_normal, he.</summary>
    /// <exception cref="ArgumentException">The name is none of these; the message lists the known ones.</exception>
    public static InitKind Parse(string name) => name switch
    {
        "default" or "auto" => InitKind.Default,
        "xavier_uniform" or "glorot_uniform" or "xavier" => InitKind.XavierUniform,
        "xavier_normal" or "glorot_normal" => InitKind.XavierNormal,
        "he_uniform" or "kaiming_uniform" => InitKind.HeUniform,
        "he_normal" or "kaiming_normal" or "he" => InitKind.HeNormal,
        _ => throw new ArgumentException($"unknown initialisation '{name}' (known: default, xavier_uniform, xavier_normal, he_uniform, he_normal)"),
    };

    /// <summary>The initialisation the activation called <paramref name="activation"/> prefers.</summary>
    public static InitKind DefaultFor(string activation, ActivationRegistry? activations = null) =>
        (activations ?? ActivationRegistry.Default).Create<double>(activation).PreferredInit;

    /// <summary>Fills a weight (out × in) in place for the activation called <paramref name="activation"/>.</summary>
    public static void Fill<T>(Tensor<T> weight, InitKind kind, string activation, Random rng, ActivationRegistry? activations = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Fill(weight, kind, (activations ?? ActivationRegistry.Default).Create<double>(activation), rng);

    /// <summary>Fills a weight (out × in) in place; <see cref="InitKind.Default"/> takes the activation's preference.</summary>
    public static void Fill<T, TAct>(Tensor<T> weight, InitKind kind, Activation<TAct> activation, Random rng)
        where T : unmanaged, IFloatingPointIeee754<T> where TAct : unmanaged, IFloatingPointIeee754<TAct>
    {
        if (kind == InitKind.Default) kind = activation.PreferredInit;
        int fanOut = weight.Dim(0), fanIn = weight.Dim(1);
        double gain = activation.InitGain;
        var d = weight.Span;
        switch (kind)
        {
            case InitKind.XavierUniform:
            {
                double a = gain * Math.Sqrt(6.0 / (fanIn + fanOut));
                for (int i = 0; i < d.Length; i++) d[i] = T.CreateChecked((rng.NextDouble() * 2 - 1) * a);
                break;
            }
            case InitKind.XavierNormal:
            {
                double s = gain * Math.Sqrt(2.0 / (fanIn + fanOut));
                for (int i = 0; i < d.Length; i++) d[i] = T.CreateChecked(Normal(rng) * s);
                break;
            }
            case InitKind.HeUniform:
            {
                double a = Math.Sqrt(6.0 / fanIn);
                for (int i = 0; i < d.Length; i++) d[i] = T.CreateChecked((rng.NextDouble() * 2 - 1) * a);
                break;
            }
            case InitKind.HeNormal:
            {
                double s = Math.Sqrt(2.0 / fanIn);
                for (int i = 0; i < d.Length; i++) d[i] = T.CreateChecked(Normal(rng) * s);
                break;
            }
        }
    }

    /// <summary>A standard normal sample (mean 0, variance 1) by the Box–Muller transform, from two draws of <paramref name="rng"/>.</summary>
    public static double Normal(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>
    /// Initialises every parameter of <paramref name="layer"/> by its role: weights drawn by <paramref name="kind"/> for
    /// the layer's activation, biases zero, scales one.
    /// </summary>
    public static void Initialize<T>(ILayer<T> layer, InitKind kind, Random rng) where T : unmanaged, IFloatingPointIeee754<T> =>
        Initialize(layer, kind, layer.Activation, rng);

    /// <summary>
    /// As <see cref="Initialize{T}(ILayer{T}, InitKind, Random)"/>, with the weights drawn for <paramref name="activation"/>:
    /// the nonlinearity the layer's output meets, which may come after a norm layer (dense → layer norm → ReLU).
    /// </summary>
    public static void Initialize<T>(ILayer<T> layer, InitKind kind, Activation<T> activation, Random rng) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var p in layer.Parameters)
        {
            switch (p.Role)
            {
                case ParameterRole.Weight: Fill(p.Value.Value, kind, activation, rng); break;
                case ParameterRole.Bias: p.Value.Value.Fill(T.Zero); break;
                case ParameterRole.Scale: p.Value.Value.Fill(T.One); break;
            }
        }
    }

    /// <summary>
    /// A multilayer perceptron with the given layer sizes (sizes[0] inputs), the hidden activation on every layer
    /// but the last, whose output is the identity (logits).
    /// </summary>
    public static Sequential<T> Mlp<T>(IReadOnlyList<int> sizes, string activation, int seed, InitKind init = InitKind.Default,
        Catalog? catalog = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        catalog ??= Catalog.Default;
        if (sizes.Count < 2) throw new ArgumentException("a network needs at least an input and an output size");
        foreach (var s in sizes) if (s <= 0) throw new ArgumentException($"layer sizes must be positive, got {s}");
        var dense = catalog.Layers.Find(DenseKind.KindName) ?? throw new ArgumentException("the layer kind registry has no dense layer");
        var rng = new Random(seed);
        var layers = new List<ILayer<T>>();
        for (int i = 0; i + 1 < sizes.Count; i++)
        {
            bool last = i + 2 == sizes.Count;
            var act = catalog.Activations.Create<T>(last ? "identity" : activation);
            var layer = dense.Create(new LayerShape(sizes[i], sizes[i + 1], Bias: true), act);
            // the output layer feeds a softmax: Xavier keeps its logits small at the start
            Initialize(layer, last ? InitKind.XavierUniform : init, rng);
            layers.Add(layer);
        }
        return new Sequential<T>(layers);
    }

    /// <summary>
    /// The network a spec describes, initialised: each weight is drawn for the first activation its output meets before
    /// the next weighted layer (so dense → layer norm → ReLU gets He), the last weighted layer by Xavier (its logits
    /// feed a softmax), norm scales one and biases zero (a <see cref="Trainer{T}"/> seeds dropout's draws).
    /// A plain MLP comes out exactly as <see cref="Mlp{T}"/> makes it.
    /// </summary>
    public static Sequential<T> Network<T>(ArchitectureSpec spec, int seed, InitKind init = InitKind.Default, Catalog? catalog = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var net = spec.Create<T>(catalog);
        var rng = new Random(seed);
        var layers = net.Layers;
        int lastWeighted = -1;
        for (int i = 0; i < layers.Count; i++) if (layers[i].MainWeight() is not null) lastWeighted = i;
        for (int i = 0; i < layers.Count; i++)
        {
            var activation = layers[i].Activation;
            for (int j = i + 1; activation.IsIdentity && j < layers.Count && layers[j].MainWeight() is null; j++) activation = layers[j].Activation;
            Initialize(layers[i], i == lastWeighted ? InitKind.XavierUniform : init, activation, rng);
        }
        return net;
    }
}
