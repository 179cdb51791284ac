using System.Numerics;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Explain;

/// <summary>
/// One dense layer's per-sample gradients: <see cref="Weight"/> is [batch × out × in], <see cref="Bias"/> [batch × out].
/// They are gradients of the per-sample loss ℓ_i, the loss of a batch holding only sample i, so that
/// L = <see cref="BatchFactor"/>·Σ_i ℓ_i: 1/N for mean-reduced losses, 1 for sum and for loss none.
/// </summary>
public sealed record PerSampleGradient(int Layer, Tensor<double> Weight, Tensor<double>? Bias, double BatchFactor);

public static class PerSampleGradients
{
    /// <summary>
    /// The closed form for a dense layer z = x·Wᵀ + b: ∇_W ℓ_i = s·δ_iᵀ·x_i (an outer product) and ∇_b ℓ_i = s·δ_i, with
    /// δ_i row i of the batch's ∂L/∂z and s = N for mean-reduced losses. The batch δ already carries the mean's 1/N
    /// (and, for mse and bce, the 1/out of averaging over a sample's outputs, which ℓ_i keeps), so s = N undoes
    /// exactly the part of the reduction that averages over samples.
    /// </summary>
    public static PerSampleGradient ForLayer<T>(Problem<T> problem, int layerIndex) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (layerIndex < 0 || layerIndex >= problem.Network.Layers.Count)
            throw new ArgumentException($"layer {layerIndex} does not exist (the network has layers 0..{problem.Network.Layers.Count - 1})");
        problem.Tape.Forward();
        problem.Backward();
        var layer = problem.Network.Layers[layerIndex];
        if (layer.Kind != DenseKind.KindName)
            throw new NotSupportedException($"layers.{layerIndex} is a {layer.Kind} layer: per-sample gradients have a closed form only for dense layers");
        var trace = problem.Trace.Layers[layerIndex];
        var delta = Float64Math.ToDouble(trace.PreActivation.Grad);
        var x = Float64Math.ToDouble(trace.Input.Value);
        int n = delta.Rows, outs = delta.Cols, ins = x.Cols;
        bool mean = problem.Loss?.Op is LossOp<T> { Reduction: Reduction.Mean };
        double scale = mean ? n : 1;
        var w = new Tensor<double>(n, outs, ins);
        var b = layer.MainBias() is null ? null : new Tensor<double>(n, outs);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < outs; o++)
            {
                double d = scale * delta.Data[i * outs + o];
                if (b is not null) b.Data[i * outs + o] = d;
                for (int k = 0; k < ins; k++) w.Data[(i * outs + o) * ins + k] = d * x.Data[i * ins + k];
            }
        return new PerSampleGradient(layerIndex, w, b, mean ? 1.0 / n : 1.0);
    }
}
