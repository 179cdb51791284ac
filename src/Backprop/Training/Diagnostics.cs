using System.Numerics;
using System.Numerics.Tensors;

namespace Backprop.Training;

/// <summary>Gradient health of one layer, measured on one batch.</summary>
public sealed record LayerHealth(
    int Layer,
    string Activation,
    double GradientNorm,
    double WeightNorm,
    double UpdateRatio,
    double OutputGradientNorm,
    double DeadFraction,
    double SaturatedFraction);

/// <summary>
/// Per-layer gradient health read off a recorded step after its backward pass: ‖∂L/∂W‖, ‖W‖, the
/// update-to-weight ratio, ‖∂L/∂h_l‖, the fraction of ReLU units that are zero for the whole batch (dead),
/// and the fraction of sigmoid/tanh activations whose derivative is below 1% of its maximum (saturated).
/// </summary>
public static class Diagnostics
{
    public static LayerHealth[] Measure<T>(CompiledStep<T> step, double learningRate, IReadOnlyList<double>? updateNorms = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var layers = step.Trace.Z.Count;
        var result = new LayerHealth[layers];
        var net = step.Network;
        for (int l = 0; l < layers; l++)
        {
            var layer = net.Layers[l];
            double g = Norm(layer.Weight.Grad.Data);
            double w = Norm(layer.Weight.Value.Data);
            double u = updateNorms is not null ? updateNorms[l] : learningRate * g;
            var h = step.Trace.H[l];
            double hg = h.HasGrad ? Norm(h.Grad.Data) : 0;
            var (dead, saturated) = UnitHealth(layer.Activation, step.Trace.Z[l].Value, h.Value);
            result[l] = new LayerHealth(l, layer.Activation.Name, g, w, w > 0 ? u / w : 0, hg, dead, saturated);
        }
        return result;
    }

    public static double Norm<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T> =>
        Math.Sqrt(double.CreateTruncating(TensorPrimitives.SumOfSquares(x)));

    /// <summary>(dead, saturated) fractions for the activation's units over a batch z, h = f(z), 0 where they do not apply.</summary>
    public static (double dead, double saturated) UnitHealth<T>(string activation, Tensor<T> z, Tensor<T> h)
        where T : unmanaged, IFloatingPointIeee754<T> => UnitHealth(Activations.Create<T>(activation), z, h);

    /// <summary>The same measures as <c>diagnose</c> (<see cref="Backprop.Explain.GradientHealth"/>): one definition of dead and saturated.</summary>
    public static (double dead, double saturated) UnitHealth<T>(Activation<T> activation, Tensor<T> z, Tensor<T> h)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (z.Length == 0) return (0, 0);
        double dead = activation is Relu<T> ? Backprop.Explain.GradientHealth.DeadFraction(z) : 0;
        return (dead, Backprop.Explain.GradientHealth.SaturatedFraction(activation, z, h) ?? 0);
    }

    /// <summary>
    /// The plain-language verdict on a set of layer measurements: <c>diagnose</c>'s own judgement
    /// (<see cref="Backprop.Explain.GradientHealth.Judge"/>), plus the one finding only training can make, updates too
    /// large for the weights.
    /// </summary>
    public static string Verdict(IReadOnlyList<LayerHealth> layers)
    {
        var shared = layers.Select(l => new Backprop.Explain.LayerHealth(l.Layer + 1, l.Activation, l.GradientNorm, l.WeightNorm,
            l.OutputGradientNorm,
            l.Activation == "relu" ? l.DeadFraction : null,
            l.Activation is "sigmoid" or "tanh" ? l.SaturatedFraction : null)).ToList();
        var updates = layers.Where(l => l.UpdateRatio > 0.1)
            .Select(l => (string.Create(System.Globalization.CultureInfo.InvariantCulture, $"layer-{l.Layer + 1} updates are {l.UpdateRatio:0.0e0} of its weights"),
                "consider a lower learning rate"));
        return Backprop.Explain.GradientHealth.Judge(shared, updates).Verdict;
    }
}
