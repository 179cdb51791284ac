using System.Numerics;
using Backprop.Core;
using Backprop.Nn;
using Backprop.Problems;

namespace Backprop.Explain;

/// <summary>
/// One layer of a network as a picture shows it: its sizes, |∂L/∂W| per weight (out × in), the mean over the batch
/// of |δ| = |∂L/∂z| per unit, and whether the gradient asked for flows through it.
/// </summary>
/// <param name="Layer">1-based, as in the derivation (layers.0 is layer 1).</param>
/// <param name="Kind">The layer's kind name, e.g. "dense".</param>
/// <param name="Activation">The name of the layer's activation ("identity" for none).</param>
/// <param name="Inputs">Features per sample in.</param>
/// <param name="Outputs">Features per sample out (units drawn).</param>
/// <param name="WeightGradient">|∂L/∂W| (out × in); null for a layer without a weight.</param>
/// <param name="UnitDelta">Mean |∂L/∂z| over the batch, one per output unit.</param>
/// <param name="OnPath">Whether the backward pass to the asked gradient goes through this layer.</param>
/// <param name="Target">Whether the asked gradient is one of this layer's (its weight, bias or output).</param>
public sealed record LayerGradients(int Layer, string Kind, string Activation, int Inputs, int Outputs, Tensor<double>? WeightGradient,
    double[] UnitDelta, bool OnPath, bool Target);

/// <summary>The gradients of one backward pass, layer by layer, for a picture of the network; <see cref="InputDelta"/> is mean |∂L/∂x|.</summary>
public sealed record NetworkGradients(string Wrt, int Inputs, double[] InputDelta, IReadOnlyList<LayerGradients> Layers)
{
    /// <summary>
    /// Reads the gradients of a problem whose backward pass has run (as after <see cref="Explainer.Explain{T}"/>);
    /// <paramref name="wrt"/> is the asked gradient whose path is marked, null for none (diagnose).
    /// </summary>
    public static NetworkGradients Of<T>(Problem<T> problem, string? wrt) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // the layer the asked gradient belongs to: its own layer for a parameter or output, before the first for the input
        int target = wrt is null ? int.MaxValue : -1;
        wrt ??= "";
        var parts = wrt.Split('.');
        if (parts.Length == 3 && parts[0] == "layers" && int.TryParse(parts[1], out int i)) target = i;
        bool output = parts.Length == 3 && parts[2] == "output";
        var layers = new List<LayerGradients>();
        foreach (var trace in problem.Trace.Layers)
        {
            var layer = trace.Layer;
            var weight = layer.MainWeight();
            Tensor<double>? wg = null;
            if (weight is not null && weight.HasGrad && weight.Value.Rank == 2)
            {
                var g = Float64Math.ToDouble(weight.Grad);
                wg = new Tensor<double>(g.Data.ToArray().Select(Math.Abs).ToArray(), g.ShapeArray);
            }
            var z = trace.PreActivation.HasGrad ? trace.PreActivation : trace.Output;
            double[] delta = z.HasGrad ? MeanAbsColumns(Float64Math.ToDouble(z.Grad)) : new double[layer.Outputs];
            bool onPath = output ? trace.Index > target : trace.Index >= target;
            layers.Add(new LayerGradients(trace.Index + 1, layer.Kind, layer.Activation.Name, layer.Inputs, layer.Outputs, wg, delta,
                onPath, trace.Index == target));
        }
        var x = problem.Input;
        double[] inputDelta = x.HasGrad ? MeanAbsColumns(Float64Math.ToDouble(x.Grad)) : new double[problem.Network.Inputs];
        return new NetworkGradients(wrt, problem.Network.Inputs, inputDelta, layers);
    }

    /// <summary>The mean |value| of each column of a batch × units matrix.</summary>
    private static double[] MeanAbsColumns(Tensor<double> t)
    {
        int rows = t.Rows, cols = t.Cols;
        var m = new double[cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) m[c] += Math.Abs(t.Data[r * cols + c]);
        for (int c = 0; c < cols; c++) m[c] /= Math.Max(1, rows);
        return m;
    }
}
