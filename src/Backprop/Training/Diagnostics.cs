using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Health;
using Backprop.Nn;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Training;

/// <summary>
/// Per-layer gradient health read off a recorded step after its backward pass: ‖∂L/∂W‖, ‖W‖, the
/// update-to-weight ratio, ‖∂L/∂h_l‖, the fraction of ReLU units that are zero for the whole batch (dead),
/// and the fraction of sigmoid/tanh activations whose derivative is below 1% of its maximum (saturated).
/// </summary>
public static class Diagnostics
{
    /// <summary>Measures every layer of a step whose forward and backward pass have run (the gradients are still in place).</summary>
    /// <param name="step">The recorded step; its trace gives each layer's pre-activation, output and their gradients.</param>
    /// <param name="learningRate">Used to estimate an update's norm as learningRate·‖∂L/∂W‖ when <paramref name="updateNorms"/> is null (plain SGD).</param>
    /// <param name="updateNorms">The norm of each layer's actual weight update (from the optimizer), in layer order; null to estimate them.</param>
    /// <returns>One <see cref="LayerHealth"/> per layer, numbered from 1; a layer without a weight has zero norms.</returns>
    public static LayerHealth[] Measure<T>(TrainingStep<T> step, double learningRate, IReadOnlyList<double>? updateNorms = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var traces = step.Trace.Layers;
        var result = new LayerHealth[traces.Count];
        for (int l = 0; l < traces.Count; l++)
        {
            result[l] = WithUpdateRatio(GradientHealth.Measure(traces[l]), l, learningRate, updateNorms);
        }
        return result;
    }

    /// <summary>
    /// The same measures for a member of a data-parallel group, over the whole global batch: every member measures its
    /// own share's rows (none, when <paramref name="step"/> is null), and <paramref name="sumOverMembers"/> adds the
    /// parts up: ‖∂L/∂h‖² (each member's rows already carry the global batch's scaling), the units alive on some row, the
    /// saturated entries and all entries. The weights and their gradients (summed already) are every member's alike.
    /// Every member must call it, with the same network.
    /// </summary>
    public static LayerHealth[] Measure<T>(Sequential<T> network, TrainingStep<T>? step, double learningRate, IReadOnlyList<double>? updateNorms,
        SpanAction sumOverMembers) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(sumOverMembers);
        var layers = network.Layers;
        // per layer: ‖∂L/∂h‖², saturated entries, entries, then one "alive" slot a unit
        var parts = new double[layers.Sum(l => 3 + l.Outputs)];
        int at = 0;
        for (int l = 0; l < layers.Count; l++)
        {
            var act = layers[l].Activation;
            if (step?.Trace.Layers[l] is { } trace)
            {
                if (trace.Output.HasGrad) parts[at] = double.CreateTruncating(TensorPrimitives.SumOfSquares<T>(trace.Output.Grad.Span));
                if (GradientHealth.SaturatedCount(act, trace.PreActivation.Value, trace.Output.Value) is var (saturated, entries))
                    (parts[at + 1], parts[at + 2]) = (saturated, entries);
                if (act.CanDie) GradientHealth.AliveUnits(trace.PreActivation.Value, parts.AsSpan(at + 3, layers[l].Outputs));
            }
            at += 3 + layers[l].Outputs;
        }
        sumOverMembers(parts);
        var result = new LayerHealth[layers.Count];
        at = 0;
        for (int l = 0; l < layers.Count; l++)
        {
            var act = layers[l].Activation;
            int units = layers[l].Outputs;
            double? dead = act.CanDie ? GradientHealth.DeadFraction(parts.AsSpan(at + 3, units)) : null;
            double? saturated = act.MaxDerivative is null ? null : parts[at + 2] == 0 ? 0 : parts[at + 1] / parts[at + 2];
            result[l] = WithUpdateRatio(GradientHealth.Measure(layers[l], l, Math.Sqrt(parts[at]), dead, saturated), l, learningRate, updateNorms);
            at += 3 + units;
        }
        return result;
    }

    /// <summary>‖update‖ / ‖W‖ of layer <paramref name="l"/>: its actual update's norm, or learningRate·‖∂L/∂W‖ when none is given.</summary>
    private static LayerHealth WithUpdateRatio(LayerHealth health, int l, double learningRate, IReadOnlyList<double>? updateNorms)
    {
        double u = updateNorms is not null ? updateNorms[l] : learningRate * health.WeightGradientNorm;
        return health with { UpdateRatio = health.WeightNorm > 0 ? u / health.WeightNorm : 0 };
    }

    /// <summary>Sums values over the members of a group, in place (see <see cref="DataParallel{T}.Sum"/>).</summary>
    public delegate void SpanAction(Span<double> values);

    /// <summary>The Euclidean norm √Σx², accumulated in <typeparamref name="T"/> and returned as a double.</summary>
    public static double Norm<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T> =>
        Math.Sqrt(double.CreateTruncating(TensorPrimitives.SumOfSquares(x)));

    /// <summary>(dead, saturated) fractions for the activation's units over a batch z, h = f(z), 0 where they do not apply.</summary>
    public static (double dead, double saturated) UnitHealth<T>(string activation, Tensor<T> z, Tensor<T> h, ActivationRegistry? activations = null)
        where T : unmanaged, IFloatingPointIeee754<T> => UnitHealth((activations ?? ActivationRegistry.Default).Create<T>(activation), z, h);

    /// <summary>The same measures as <c>diagnose</c> (<see cref="GradientHealth"/>): one definition of dead and saturated.</summary>
    public static (double dead, double saturated) UnitHealth<T>(Activation<T> activation, Tensor<T> z, Tensor<T> h)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (z.Length == 0) return (0, 0);
        double dead = activation.CanDie ? GradientHealth.DeadFraction(z) : 0;
        return (dead, GradientHealth.SaturatedFraction(activation, z, h) ?? 0);
    }

    /// <summary>
    /// The plain-language verdict on a set of layer measurements: <c>diagnose</c>'s own judgement
    /// (<see cref="GradientHealth.Judge"/>), plus the one finding only training can make, updates too large for the weights.
    /// </summary>
    public static string Verdict(IReadOnlyList<LayerHealth> layers, ActivationRegistry? activations = null)
    {
        var updates = layers.Where(l => l.UpdateRatio > 0.1)
            .Select(l => (string.Create(System.Globalization.CultureInfo.InvariantCulture, $"layer-{l.Layer} updates are {l.UpdateRatio:0.0e0} of its weights"),
                "consider a lower learning rate"));
        return GradientHealth.Judge(layers, updates, activations).Verdict;
    }
}
