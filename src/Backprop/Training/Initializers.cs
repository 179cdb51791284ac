using System.Numerics;
using Backprop.Nn;

namespace Backprop.Training;

public enum InitKind { Default, XavierUniform, XavierNormal, HeUniform, HeNormal }

/// <summary>Weight initialisation: Glorot/Xavier for saturating activations, He/Kaiming for ReLU-like ones.</summary>
public static class Initializers
{
    public static InitKind Parse(string name) => name switch
    {
        "default" or "auto" => InitKind.Default,
        "xavier_uniform" or "glorot_uniform" or "xavier" => InitKind.XavierUniform,
        "xavier_normal" or "glorot_normal" => InitKind.XavierNormal,
        "he_uniform" or "kaiming_uniform" => InitKind.HeUniform,
        "he_normal" or "kaiming_normal" or "he" => InitKind.HeNormal,
        _ => throw new ArgumentException($"unknown initialisation '{name}' (known: default, xavier_uniform, xavier_normal, he_uniform, he_normal)"),
    };

    /// <summary>He for relu, leaky_relu, elu, gelu and silu (their gain assumes half the units are off); Xavier otherwise.</summary>
    public static InitKind DefaultFor(string activation) => activation switch
    {
        "relu" or "leaky_relu" or "elu" or "gelu" or "silu" => InitKind.HeNormal,
        _ => InitKind.XavierUniform,
    };

    /// <summary>Fills a weight (out × in) in place; biases start at zero.</summary>
    public static void Fill<T>(Tensor<T> weight, InitKind kind, string activation, Random rng)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (kind == InitKind.Default) kind = DefaultFor(activation);
        int fanOut = weight.Dim(0), fanIn = weight.Dim(1);
        double gain = activation switch { "tanh" => 5.0 / 3.0, "sigmoid" => 1.0, _ => 1.0 };
        var d = weight.Data;
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

    public static double Normal(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>
    /// A multilayer perceptron with the given layer sizes (sizes[0] inputs), the hidden activation on every layer
    /// but the last, whose output is the identity (logits).
    /// </summary>
    public static Sequential<T> Mlp<T>(IReadOnlyList<int> sizes, string activation, int seed, InitKind init = InitKind.Default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (sizes.Count < 2) throw new ArgumentException("--layers needs at least an input and an output size");
        foreach (var s in sizes) if (s <= 0) throw new ArgumentException($"--layers: sizes must be positive, got {s}");
        var rng = new Random(seed);
        var layers = new List<DenseLayer<T>>();
        for (int i = 0; i + 1 < sizes.Count; i++)
        {
            bool last = i + 2 == sizes.Count;
            string act = last ? "identity" : activation;
            var w = new Tensor<T>(sizes[i + 1], sizes[i]);
            // the output layer feeds a softmax: Xavier keeps its logits small at the start
            Fill(w, last ? InitKind.XavierUniform : init, act, rng);
            layers.Add(new DenseLayer<T>(w, new Tensor<T>(sizes[i + 1]), Activations.Create<T>(act)));
        }
        return new Sequential<T>(layers);
    }
}
