using System.Numerics;
using Backprop.Explain;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Kernels;

namespace Backprop.Tests.Nn;

/// <summary>The registries are immutable values: With returns a new one; readers take them explicitly.</summary>
public sealed class RegistryTests
{
    [Fact]
    public void WithReturnsANewRegistryAndLeavesTheDefaultAlone()
    {
        var before = ActivationRegistry.Default.Names.ToArray();
        var extended = ActivationRegistry.Default.With(ActivationKind.Of("test_x", _ => new TestSoftsign<double>(true)));
        Assert.Equal(before, ActivationRegistry.Default.Names);
        Assert.Equal([.. before, "test_x"], extended.Names);
        Assert.Null(ActivationRegistry.Default.Find("test_x"));

        // an entry of the same name replaces the old one in place
        var replaced = extended.With(ActivationKind.Of("relu", _ => new TestSoftsign<double>(false)));
        Assert.Equal(extended.Names, replaced.Names);
        Assert.Equal(TestKinds.SoftsignUnfused, replaced.Create<float>("relu").Name);
        Assert.IsType<Relu<float>>(ActivationRegistry.Default.Create<float>("relu"));

        Assert.Equal(["dense", "layernorm", "batchnorm", "dropout"], LayerKindRegistry.Default.Names);
        Assert.Equal(["mse", "l1", "huber", "cross_entropy", "bce_with_logits", "none"], LossRegistry.Default.Names);
        Assert.NotSame(Catalog.Default, TestKinds.Catalog);
        Assert.Null(Catalog.Default.Layers.Find(ScaleKind.KindName));

        // aliases select the kind where people type names; files accept canonical names only
        Assert.True(ActivationRegistry.Default.Find("linear")?.Name == "identity");
        Assert.False(ActivationRegistry.Default.IsCanonical("linear"));
        Assert.DoesNotContain("softmax", ActivationRegistry.Default.HiddenNames);
    }

    [Fact]
    public void EveryActivationCastsToItselfWithItsParameter()
    {
        foreach (var kind in TestKinds.Catalog.Activations.Kinds)
        {
            var a = kind.Create<double>(0.2);
            var f = a.Cast<float>();
            Assert.Equal(a.Name, f.Name);
            Assert.Equal(a.Parameter, f.Parameter);
            Assert.Equal(kind.Name, a.Name);
        }
    }

    private const string L1Problem = """
        {
          "name": "l1",
          "layers": [
            { "weight": [[0.8, -0.3], [0.5, 0.9]], "bias": [0.1, -0.2], "activation": "tanh" },
            { "weight": [[1.2, -0.7]], "activation": "identity" }
          ],
          "input": [[0.4, -1.1], [1.5, 0.3]],
          "loss": "test_l1",
          "target": [[0.5], [-0.25]]
        }
        """;

    /// <summary>A loss defined in the test project: the problem reader knows its name, and explain derives through it.</summary>
    [Fact]
    public void ATestOnlyLossIsReadAndExplained()
    {
        var e = Assert.Throws<ProblemFormatException>(() => ProblemFile.Parse(L1Problem));
        Assert.Contains("unknown loss 'test_l1' (known: mse, l1, huber, cross_entropy, bce_with_logits, none)", e.Message);

        var catalog = Catalog.Default.With(new TestL1Loss());
        var spec = ProblemFile.Parse(L1Problem, catalog: catalog);
        var d = Explainer.Explain(new Problem<double>(spec, catalog), "layers.0.weight");
        Assert.Equal("L = (1/N)·Σ |ŷ − t|", d.Objective);                      // the loss op's own formula
        Assert.Contains(d.Backward[0].Factors, f => f.Definition.StartsWith("sign(", StringComparison.Ordinal));
        Assert.True(d.MaxTapeDeviation < 1e-9, $"{d.MaxTapeDeviation}");   // the loss's own float64 rule agrees with its backward
        Assert.True(d.FiniteDifference!.Passed);
    }
}

/// <summary>Mean absolute error, a test-only loss kind.</summary>
public sealed class TestL1Loss : LossKind
{
    public override string Name => "test_l1";
    public override LossTarget Target => LossTarget.Values;
    public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings) =>
        Functional.Apply(new TestL1LossOp<T>(reduction), output, values!);
}

public sealed class TestL1LossOp<T>(Reduction reduction) : LossOp<T>(reduction) where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "test_l1";
    public override IReadOnlyList<string> InputNames => ["ŷ", "t"];
    public override string Formula => $"L = {Scale}Σ |ŷ − t|";
    public override IReadOnlyList<string> GradFormulas => [$"dŷ = sign(ŷ − t){Over}·dL", $"dt = −sign(ŷ − t){Over}·dL"];

    protected override void Validate(Var<T>[] inputs)
    {
        if (!inputs[0].Value.SameShape(inputs[1].Shape)) throw new ShapeMismatchException("test_l1: shapes differ");
    }

    public override int Count(Var<T>[] inputs) => inputs[0].Value.Length;

    public override Tensor<double> ReferenceGradient(Var<T>[] inputs)
    {
        var y = ToDouble(inputs[0].Value);
        var t = ToDouble(inputs[1].Value);
        double n = Divisor(inputs);
        var g = new Tensor<double>(y.ShapeArray);
        for (int i = 0; i < g.Length; i++) g.Data[i] = Math.Sign(y.Data[i] - t.Data[i]) / n;
        return g;
    }

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var y = inputs[0].Value.Span; var t = inputs[1].Value.Span;
        T s = T.Zero;
        for (int i = 0; i < y.Length; i++) s += T.Abs(y[i] - t[i]);
        output.Span[0] = Reduction == Reduction.Mean ? s / T.CreateChecked(Math.Max(1, y.Length)) : s;
    }

    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var y = inputs[0].Value.Span; var t = inputs[1].Value.Span;
        T k = output.Grad.Span[0];
        if (Reduction == Reduction.Mean) k /= T.CreateChecked(Math.Max(1, y.Length));
        for (int which = 0; which < 2; which++)
        {
            if (!inputs[which].RequiresGrad) continue;
            var g = inputs[which].GradTarget(out bool acc).Span;
            for (int i = 0; i < y.Length; i++)
            {
                T v = (which == 0 ? k : -k) * T.CreateChecked(T.Sign(y[i] - t[i]));
                g[i] = acc ? g[i] + v : v;
            }
        }
    }
}
