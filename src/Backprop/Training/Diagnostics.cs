using System.Numerics;
using System.Numerics.Tensors;
using Backprop.Nn;

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
        var traces = step.Trace.Layers;
        var result = new LayerHealth[traces.Count];
        for (int l = 0; l < traces.Count; l++)
        {
            var layer = traces[l].Layer;
            var weight = layer.MainWeight();
            double g = weight is null ? 0 : Norm<T>(weight.Grad.Span);
            double w = weight is null ? 0 : Norm<T>(weight.Value.Span);
            double u = updateNorms is not null ? updateNorms[l] : learningRate * g;
            var h = traces[l].Output;
            double hg = h.HasGrad ? Norm<T>(h.Grad.Span) : 0;
            var (dead, saturated) = UnitHealth(layer.Activation, traces[l].PreActivation.Value, h.Value);
            result[l] = new LayerHealth(l, layer.Activation.Name, g, w, w > 0 ? u / w : 0, hg, dead, saturated);
        }
        return result;
    }

    public static double Norm<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T> =>
        Math.Sqrt(double.CreateTruncating(TensorPrimitives.SumOfSquares(x)));

    /// <summary>(dead, saturated) fractions for the activation's units over a batch z, h = f(z), 0 where they do not apply.</summary>
    public static (double dead, double saturated) UnitHealth<T>(string activation, Tensor<T> z, Tensor<T> h, ActivationRegistry? activations = null)
        where T : unmanaged, IFloatingPointIeee754<T> => UnitHealth((activations ?? ActivationRegistry.Default).Create<T>(activation), z, h);

    /// <summary>The same measures as <c>diagnose</c> (<see cref="Backprop.Explain.GradientHealth"/>): one definition of dead and saturated.</summary>
    public static (double dead, double saturated) UnitHealth<T>(Activation<T> activation, Tensor<T> z, Tensor<T> h)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (z.Length == 0) return (0, 0);
        double dead = activation.CanDie ? Backprop.Explain.GradientHealth.DeadFraction(z) : 0;
        return (dead, Backprop.Explain.GradientHealth.SaturatedFraction(activation, z, h) ?? 0);
    }

    /// <summary>
    /// The plain-language verdict on a set of layer measurements: <c>diagnose</c>'s own judgement
    /// (<see cref="Backprop.Explain.GradientHealth.Judge"/>), plus the one finding only training can make, updates too
    /// large for the weights.
    /// </summary>
    public static string Verdict(IReadOnlyList<LayerHealth> layers, ActivationRegistry? activations = null)
    {
        activations ??= ActivationRegistry.Default;
        // which measures apply is a fact of the activation: dead units only where they can die, saturation only where it saturates
        var facts = layers.Select(l => activations.TryCreate<double>(l.Activation)).ToList();
        var shared = layers.Select((l, i) => new Backprop.Explain.LayerHealth(l.Layer + 1, l.Activation, l.GradientNorm, l.WeightNorm,
            l.OutputGradientNorm,
            facts[i] is { CanDie: true } ? l.DeadFraction : null,
            facts[i] is { MaxDerivative: not null } ? l.SaturatedFraction : null)).ToList();
        var updates = layers.Where(l => l.UpdateRatio > 0.1)
            .Select(l => (string.Create(System.Globalization.CultureInfo.InvariantCulture, $"layer-{l.Layer + 1} updates are {l.UpdateRatio:0.0e0} of its weights"),
                "consider a lower learning rate"));
        return Backprop.Explain.GradientHealth.Judge(shared, updates).Verdict;
    }
}
