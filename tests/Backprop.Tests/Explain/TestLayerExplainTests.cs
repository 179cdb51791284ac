using Backprop.Explain;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Tests.Nn;

namespace Backprop.Tests.Explain;

/// <summary>
/// Explain walks a network holding a test-only layer kind (<see cref="ScaleLayer{T}"/>, h = f(x ⊙ s + c), two ops): it
/// prints each of the layer's ops with this network's names (its parameter, its buffer, its own value names), shapes
/// and numbers, their backward rules on the way down, and the finite-difference check of the result passes.
/// </summary>
public sealed class TestLayerExplainTests
{
    private static Problem<T> ScaleProblem<T>() where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var acts = TestKinds.Catalog.Activations;
        var rng = new Random(4);
        var net = new Sequential<T>(
        [
            new DenseLayer<T>(Tensor<T>.Random(rng, -1, 1, 3, 2), Tensor<T>.Random(rng, -0.5, 0.5, 3), acts.Create<T>("tanh")),
            new ScaleLayer<T>(Tensor<T>.Random(rng, 0.5, 1.5, 3), Tensor<T>.Random(rng, -0.3, 0.3, 3), acts.Create<T>(TestKinds.Softsign)),
            new DenseLayer<T>(Tensor<T>.Random(rng, -1, 1, 1, 3), null, acts.Create<T>("identity")),
        ]);
        var spec = new ProblemSpec("scale-chain", [], [[0.3, -1.2], [1.1, 0.4], [-0.7, 0.9]], LossKind.Mse, Reduction.Mean,
            [[0.5], [-0.3], [0.1]], null, null);
        return new Problem<T>(spec, net, TestKinds.Catalog);
    }

    [Fact]
    public void ExplainsTheLayersOwnParameter()
    {
        var p = ScaleProblem<double>();
        var d = Explainer.Explain(p, "layers.1.scale");
        var scaleStep = d.Result;
        Assert.Equal("∂L/∂scale₂", scaleStep.Name);
        Assert.Equal("∂L/∂scale₂ = (∂L/∂u₂) ⊙ h₁", scaleStep.Formula);     // MulOp's rule dB = dY ⊙ A in this network's names
        Assert.Equal("[3×3] → [3]", scaleStep.Shape);
        Assert.Equal(p.Network.Layers[1].Parameter("scale")!.Grad.Data, scaleStep.Value.Data);
        Assert.Contains(d.Forward, s => s.Name == "u₂" && s.Formula == "u₂ = h₁ ⊙ scale₂");       // the layer's own value names
        Assert.Contains(d.Forward, s => s.Name == "z₂" && s.Formula == "z₂ = u₂ + shift₂");      // its buffer, by name
        Assert.Contains(d.Backward, s => s.Name == "∂L/∂u₂" && s.Formula.StartsWith("∂L/∂u₂ = δ₂", StringComparison.Ordinal));
        Assert.Contains(d.Backward, s => s.Name == "δ₂" && s.Factors.Any(f => f.Symbol == "ssign′(z₂)"));
        Assert.True(d.FiniteDifference!.Passed, DerivationRenderer.FiniteDifferenceLine(d.FiniteDifference));

        string text = DerivationRenderer.Render(d, DerivationFormat.Text);
        Assert.Contains("∂L/∂scale₂ = (∂L/∂u₂) ⊙ h₁", text);
        Assert.Contains("dB = dY ⊙ A", text);                                 // the op's rule from the tape
        Assert.Contains("\\operatorname{ssign}", DerivationRenderer.Render(d, DerivationFormat.Latex));
    }

    [Theory]
    [InlineData("layers.0.weight")]
    [InlineData("layers.0.bias")]
    [InlineData("input")]
    public void ExplainsThroughTheLayerToEarlierParameters(string wrt)
    {
        foreach (var d in new[] { Explainer.Explain(ScaleProblem<double>(), wrt), Explainer.Explain(ScaleProblem<float>(), wrt) })
        {
            Assert.Contains(d.Backward, s => s.Name == "∂L/∂h₁" && s.Formula == "∂L/∂h₁ = (∂L/∂u₂) ⊙ scale₂");
            Assert.True(d.FiniteDifference!.Passed, DerivationRenderer.FiniteDifferenceLine(d.FiniteDifference));
            Assert.True(d.MaxTapeDeviation < 1e-6, $"{wrt}: {d.MaxTapeDeviation}"); // the dense steps below still recompute by their rules
        }
    }
}
