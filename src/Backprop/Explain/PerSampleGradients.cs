using System.Numerics;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Explain;

/// <summary>One parameter's per-sample gradients, [batch × the parameter's shape], under its name in the layer ("weight").</summary>
public sealed record PerSampleParameter(string Name, Tensor<double> Gradient);

/// <summary>
/// One layer's per-sample gradients, for each of its parameters (none for dropout): for a dense layer <see cref="Weight"/>
/// is [batch × out × in] and <see cref="Bias"/> [batch × out]; for a norm layer weight (γ) and bias (β) are [batch × F].
/// They are gradients of the per-sample losses ℓ_i, where L = <see cref="BatchFactor"/>·Σ_i ℓ_i: ℓ_i is sample i's own
/// term of the loss (the loss of a batch holding only sample i; with class weights, weighted by its class's weight), and
/// the batch factor is 1/N for mean-reduced losses (1/Σ_i w[t_i] with class weights), 1 for sum and for loss none.
/// </summary>
public sealed record PerSampleGradient(int Layer, IReadOnlyList<PerSampleParameter> Parameters, double BatchFactor)
{
    /// <summary>The per-sample gradients of the parameter named "weight", or null where the layer has none.</summary>
    public Tensor<double>? Weight => Parameters.FirstOrDefault(p => p.Name == "weight")?.Gradient;
    /// <summary>The per-sample gradients of the parameter named "bias", or null where the layer has none.</summary>
    public Tensor<double>? Bias => Parameters.FirstOrDefault(p => p.Name == "bias")?.Gradient;
}

/// <summary>A network whose samples are coupled (batch norm in training mode): per-sample gradients are not defined.</summary>
public sealed class CoupledSamplesException(string message) : ArgumentException(message);

/// <summary>
/// Gradients of each sample's own loss ℓ_i with respect to every layer's parameters (<see cref="PerSampleGradient"/>),
/// for explaining which samples drive a step.
/// </summary>
public static class PerSampleGradients
{
    /// <summary>The per-sample gradients of one layer's parameters (<see cref="ForAllLayers{T}"/>).</summary>
    public static PerSampleGradient ForLayer<T>(Problem<T> problem, int layerIndex) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (layerIndex < 0 || layerIndex >= problem.Network.Layers.Count)
            throw new ArgumentException($"layer {layerIndex} does not exist (the network has layers 0..{problem.Network.Layers.Count - 1})");
        return ForAllLayers(problem)[layerIndex];
    }

    /// <summary>
    /// Per-sample gradients of every layer's parameters by one mechanism for every layer kind: backward seeded with only
    /// row i of ∂L/∂ŷ gives sample i's share of each parameter's gradient, and s·(that share) = ∇ℓ_i, with s = 1/batch
    /// factor (s = N for a mean: the batch's ∂L/∂ŷ carries the mean's 1/N, and for mse and bce also the 1/out of
    /// averaging over a sample's outputs, which ℓ_i keeps). For a dense layer this is the closed form ∇_W ℓ_i = s·δ_iᵀ·x_i,
    /// ∇_b ℓ_i = s·δ_i; for a norm layer ∇_γ ℓ_i = s·dy_i ⊙ x̂_i, ∇_β ℓ_i = s·dy_i. It holds when each sample's output
    /// depends on that sample alone (dense, layer norm, dropout with its mask row, batch norm in evaluation); a batch
    /// norm in training mode couples the samples, and is refused with <see cref="CoupledSamplesException"/>.
    /// </summary>
    public static IReadOnlyList<PerSampleGradient> ForAllLayers<T>(Problem<T> problem) where T : unmanaged, IFloatingPointIeee754<T>
    {
        problem.Forward();
        problem.Backward();
        RefuseCoupled(problem);
        double scale = SampleScale(problem);
        var output = problem.Output;
        var dOut = output.Grad.Clone();
        int n = dOut.Dim(0), width = dOut.Length / n;
        var layers = problem.Network.Layers;
        var result = layers.Select(l => l.Parameters.Select(p => new Tensor<double>([n, .. p.Value.Value.ShapeArray])).ToArray()).ToArray();
        var seed = new Tensor<T>(dOut.ShapeArray);
        try
        {
            for (int i = 0; i < n; i++)
            {
                seed.Span.Clear();
                dOut.Span.Slice(i * width, width).CopyTo(seed.Span.Slice(i * width, width));
                problem.Tape.Backward(output, seed);
                for (int l = 0; l < layers.Count; l++)
                    for (int k = 0; k < layers[l].Parameters.Count; k++)
                    {
                        var g = layers[l].Parameters[k].Value.Grad.Span;
                        var dst = result[l][k].Data.Slice(i * g.Length, g.Length);
                        for (int j = 0; j < g.Length; j++) dst[j] = scale * double.CreateTruncating(g[j]);
                    }
            }
        }
        finally
        {
            problem.Backward(); // the tape holds the objective's gradients again
        }
        return [.. layers.Select((layer, l) => new PerSampleGradient(l,
            [.. layer.Parameters.Select((p, k) => new PerSampleParameter(p.Name, result[l][k]))], 1 / scale))];
    }

    /// <summary>s with ∇ℓ_i = s·(sample i's share of ∇L): Divisor·N/Count for a mean (N for a plain mean, Σw with class weights), else 1.</summary>
    private static double SampleScale<T>(Problem<T> problem) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (problem.Loss is not { Op: LossOp<T> { Reduction: Reduction.Mean } loss } node) return 1;
        var inputs = node.InputArray;
        int n = problem.Output.Value.Dim(0);
        return loss.Divisor(inputs) * n / Math.Max(1, loss.Count(inputs));
    }

    /// <summary>Throws <see cref="CoupledSamplesException"/> naming the first layer whose last forward pass coupled the batch's samples.</summary>
    public static void RefuseCoupled<T>(Problem<T> problem) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var nodes = problem.Tape.Nodes;
        foreach (var trace in problem.Trace.Layers)
            for (int k = trace.FirstNode; k < trace.FirstNode + trace.NodeCount && k < nodes.Count; k++)
                if (nodes[k].Op is IBatchCoupling { CouplesBatch: true } coupling)
                    throw new CoupledSamplesException(
                        $"per-sample gradients are not defined for layers.{trace.Index} ({trace.Layer.Kind}): {coupling.CouplingReason}, not on its own loss alone");
    }
}
