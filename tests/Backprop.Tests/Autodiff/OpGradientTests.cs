using System.Numerics;
using Backprop.Tests.Nn;

namespace Backprop.Tests.Autodiff;

/// <summary>A finite-difference check of every op's backward rule, and float32 against float64.</summary>
public class OpGradientTests
{
    private static ActivationRegistry Activations => TestKinds.Catalog.Activations;

    private static Tensor<double> R(int seed, double lo, double hi, params int[] shape) =>
        Tensor<double>.Random(new Random(seed), lo, hi, shape);

    /// <summary>Inputs away from 0, so that relu-like kinks are not straddled by the finite-difference step.</summary>
    private static Tensor<double> AwayFromZero(int seed, params int[] shape)
    {
        var t = R(seed, 0.1, 2.0, shape);
        var rng = new Random(seed + 1);
        for (int i = 0; i < t.Length; i++) if (rng.Next(2) == 0) t.Data[i] = -t.Data[i];
        return t;
    }

    public sealed record Case(string Name, Tensor<double>[] Inputs)
    {
        public override string ToString() => Name;
    }

    /// <summary>Every case's graph, written once for both precisions.</summary>
    private static Var<T> Build<T>(string name, Var<T>[] v) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // every registered activation, the test-only ones included: a new kind is gradchecked by registering it
        if (name.StartsWith("activation ", StringComparison.Ordinal) && Activations.Find(name[11..]) is { } kind)
            return Functional.Activate(v[0], kind.Create<T>());
        return name switch
        {
            "matmul A·B" => Functional.MatMul(v[0], v[1]),
            "matmul A·Bᵀ" => Functional.MatMul(v[0], v[1], transB: true),
            "matmul Aᵀ·B" => Functional.MatMul(v[0], v[1], transA: true),
            "matmul Aᵀ·Bᵀ" => Functional.MatMul(v[0], v[1], true, true),
            "linear with bias" => Functional.Linear(v[0], v[1], v[2]),
            "linear without bias" => Functional.Linear(v[0], v[1]),
            "add same shape" or "add bias row [n]" or "add column [m×1]" or "add scalar tensor" or "add 3-D broadcast" => v[0] + v[1],
            "sub bias row" => v[0] - v[1],
            "mul same shape" or "mul column" => v[0] * v[1],
            "div" or "div by row" => v[0] / v[1],
            "neg" => -v[0],
            "add scalar" => v[0] + 2.5,
            "mul scalar" => v[0] * -1.5,
            "pow" => Functional.Pow(v[0], 3),
            "sum all" => Functional.Sum(v[0]),
            "mean all" => Functional.Mean(v[0]),
            "sum axis 0" => Functional.Sum(v[0], 0),
            "sum axis 1 keepdim" => Functional.Sum(v[0], 1, keepDim: true),
            "mean axis -1" => Functional.Mean(v[0], -1),
            "mean axis 1 of 3-D" => Functional.Mean(v[0], 1),
            "exp" => Functional.Exp(v[0]),
            "log" => Functional.Log(v[0]),
            "gelu far negative" => Functional.Gelu(v[0]),
            "softplus past threshold" => Functional.Softplus(v[0]),
            "leaky_relu slope 0.2" => Functional.LeakyRelu(v[0], 0.2),
            "softmax" => Functional.Softmax(v[0]),
            "log_softmax" or "log_softmax large logits" => Functional.LogSoftmax(v[0]),
            "mse Mean" => Functional.Mse(v[0], v[1], Reduction.Mean),
            "mse Sum" => Functional.Mse(v[0], v[1], Reduction.Sum),
            "cross_entropy Mean" => Functional.CrossEntropy(v[0], [2, 0, 3], Reduction.Mean),
            "cross_entropy Sum" => Functional.CrossEntropy(v[0], [2, 0, 3], Reduction.Sum),
            "bce_with_logits Mean" => Functional.BceWithLogits(v[0], v[1], Reduction.Mean),
            "bce_with_logits Sum" => Functional.BceWithLogits(v[0], v[1], Reduction.Sum),
            "l1 Mean" => Functional.L1(v[0], v[1], Reduction.Mean),
            "l1 Sum" => Functional.L1(v[0], v[1], Reduction.Sum),
            "huber inside δ" or "huber beyond δ" or "huber both branches" => Functional.Huber(v[0], v[1], delta: 1.0),
            "huber δ 0.5 Sum" => Functional.Huber(v[0], v[1], delta: 0.5, Reduction.Sum),
            "cross_entropy class weights Mean" => Functional.Apply(new CrossEntropyLossOp<T>(Reduction.Mean, new ClassTargets([2, 0, 3]), ClassWeights), v[0]),
            "cross_entropy class weights Sum" => Functional.Apply(new CrossEntropyLossOp<T>(Reduction.Sum, new ClassTargets([2, 0, 3]), ClassWeights), v[0]),
            "bce_with_logits pos_weight Mean" => Functional.BceWithLogits(v[0], v[1], Reduction.Mean, PosWeight),
            "bce_with_logits pos_weight Sum" => Functional.BceWithLogits(v[0], v[1], Reduction.Sum, PosWeight),
            "layer_norm with γ, β" => Functional.LayerNorm(v[0], v[1], v[2]),
            "layer_norm without γ, β" => Functional.LayerNorm(v[0]),
            "layer_norm eps 0.1" => Functional.LayerNorm(v[0], v[1], v[2], eps: 0.1),
            "batch_norm training" => Functional.BatchNorm(v[0], Statistics<T>(training: true), v[1], v[2]),
            "batch_norm training without γ, β" => Functional.BatchNorm(v[0], Statistics<T>(training: true)),
            "batch_norm eval" => Functional.BatchNorm(v[0], Statistics<T>(training: false), v[1], v[2]),
            "dropout fixed mask" => Functional.Dropout(v[0], new DropoutMask<T>(0.3) { Fixed = DropMask.Cast<T>() }),
            "dropout eval" => Functional.Dropout(v[0], new DropoutMask<T>(0.3) { Mode = new LayerMode { Training = false } }),
            "dropout into a loss" => Functional.Mse(Functional.Dropout(v[0], new DropoutMask<T>(0.5) { Fixed = DropMask.Cast<T>() }), v[1]),
            "x used twice" => Functional.Sum(v[0] * v[0] + Functional.Sigmoid(v[0])),
            "two-layer net" => Functional.CrossEntropy(Functional.Linear(Functional.Tanh(Functional.Linear(v[0], v[1], v[2])), v[3]), [1, 0]),
            _ => throw new ArgumentException(name),
        };
    }

    private static readonly double[] ClassWeights = [0.5, 2.0, 1.5, 0.8];
    private static readonly double[] PosWeight = [0.5, 2.0, 3.0, 1.2];
    private static readonly Tensor<double> DropMask = Tensor<double>.FromRows([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]]);

    /// <summary>Batch-norm statistics over 4 features; eval mode normalises with these (not the batch's) mean and variance.</summary>
    private static BatchNormStatistics<T> Statistics<T>(bool training) where T : unmanaged, IFloatingPointIeee754<T> =>
        new(R(11, -0.5, 0.5, 4).Cast<T>(), R(12, 0.5, 2.0, 4).Cast<T>(), 1e-5, 0.1) { Mode = new LayerMode { Training = training } };

    /// <summary><paramref name="x"/> shifted by |d| in [lo, hi] with random signs: a target at a chosen distance from the prediction.</summary>
    private static Tensor<double> Shifted(Tensor<double> x, int seed, double lo, double hi)
    {
        var d = R(seed, lo, hi, x.ShapeArray);
        var rng = new Random(seed + 1);
        var t = x.Clone();
        for (int i = 0; i < t.Length; i++) t.Data[i] += rng.Next(2) == 0 ? d.Data[i] : -d.Data[i];
        return t;
    }

    /// <summary>Distances |ŷ − t| alternating between [0.2, 0.7] and [1.3, 2.0]: both Huber branches, away from the kink at δ = 1.</summary>
    private static Tensor<double> BothBranches(Tensor<double> x)
    {
        var t = Shifted(x, 21, 0.2, 0.7);
        var far = Shifted(x, 23, 1.3, 2.0);
        for (int i = 0; i < t.Length; i += 2) t.Data[i] = far.Data[i];
        return t;
    }

    public static TheoryData<Case> Cases()
    {
        var d = new TheoryData<Case>();
        void C(string n, params Tensor<double>[] i) => d.Add(new Case(n, i));
        C("matmul A·B", R(1, -1, 1, 3, 4), R(2, -1, 1, 4, 5));
        C("matmul A·Bᵀ", R(1, -1, 1, 3, 4), R(2, -1, 1, 5, 4));
        C("matmul Aᵀ·B", R(1, -1, 1, 4, 3), R(2, -1, 1, 4, 5));
        C("matmul Aᵀ·Bᵀ", R(1, -1, 1, 4, 3), R(2, -1, 1, 5, 4));
        C("linear with bias", R(1, -1, 1, 6, 3), R(2, -1, 1, 4, 3), R(3, -1, 1, 4));
        C("linear without bias", R(1, -1, 1, 2, 3), R(2, -1, 1, 4, 3));
        C("add same shape", R(1, -1, 1, 3, 4), R(2, -1, 1, 3, 4));
        C("add bias row [n]", R(1, -1, 1, 3, 4), R(2, -1, 1, 4));
        C("add column [m×1]", R(1, -1, 1, 3, 4), R(2, -1, 1, 3, 1));
        C("add scalar tensor", R(1, -1, 1, 3, 4), R(2, -1, 1, 1));
        C("add 3-D broadcast", R(1, -1, 1, 2, 1, 4), R(2, -1, 1, 3, 1));
        C("sub bias row", R(1, -1, 1, 3, 4), R(2, -1, 1, 1, 4));
        C("mul same shape", R(1, -1, 1, 3, 4), R(2, -1, 1, 3, 4));
        C("mul column", R(1, -1, 1, 3, 4), R(2, -1, 1, 3, 1));
        C("div", R(1, -1, 1, 3, 4), R(2, 0.5, 2, 3, 4));
        C("div by row", R(1, -1, 1, 3, 4), R(2, 0.5, 2, 4));
        C("neg", R(1, -1, 1, 3, 4));
        C("add scalar", R(1, -1, 1, 3, 4));
        C("mul scalar", R(1, -1, 1, 3, 4));
        C("pow", R(1, 0.2, 2, 3, 4));
        C("sum all", R(1, -1, 1, 3, 4));
        C("mean all", R(1, -1, 1, 3, 4));
        C("sum axis 0", R(1, -1, 1, 3, 4));
        C("sum axis 1 keepdim", R(1, -1, 1, 3, 4));
        C("mean axis -1", R(1, -1, 1, 2, 3, 4));
        C("mean axis 1 of 3-D", R(1, -1, 1, 2, 3, 4));
        C("exp", R(1, -2, 2, 3, 4));
        C("log", R(1, 0.1, 3, 3, 4));
        foreach (var act in Activations.Names) C($"activation {act}", AwayFromZero(7, 4, 5)); // the test-only softsign too
        C("gelu far negative", R(1, -9, -4, 2, 3));
        C("softplus past threshold", R(1, 19, 25, 2, 3));
        C("leaky_relu slope 0.2", AwayFromZero(3, 3, 3));
        C("softmax", R(1, -3, 3, 3, 5));
        C("log_softmax", R(1, -3, 3, 3, 5));
        C("log_softmax large logits", R(1, 100, 140, 2, 4));
        C("mse Mean", R(1, -1, 1, 3, 4), R(2, -1, 1, 3, 4));
        C("mse Sum", R(1, -1, 1, 3, 4), R(2, -1, 1, 3, 4));
        C("cross_entropy Mean", R(1, -3, 3, 3, 4));
        C("cross_entropy Sum", R(1, -3, 3, 3, 4));
        C("bce_with_logits Mean", R(1, -4, 4, 3, 4), R(2, 0, 1, 3, 4));
        C("bce_with_logits Sum", R(1, -4, 4, 3, 4), R(2, 0, 1, 3, 4));
        // l1 and huber away from their kinks (ŷ = t; |ŷ − t| = δ), which a finite-difference step must not straddle
        var pred = R(1, -1, 1, 3, 4);
        C("l1 Mean", pred, Shifted(pred, 2, 0.05, 1));
        C("l1 Sum", pred, Shifted(pred, 3, 0.05, 1));
        C("huber inside δ", pred, Shifted(pred, 4, 0.01, 0.9));
        C("huber beyond δ", pred, Shifted(pred, 5, 1.1, 3));
        C("huber both branches", pred, BothBranches(pred));
        C("huber δ 0.5 Sum", pred, BothBranches(pred));   // |d| in [0.2, 0.7] ∪ [1.3, 2]: mostly beyond 0.5
        C("cross_entropy class weights Mean", R(1, -3, 3, 3, 4));
        C("cross_entropy class weights Sum", R(1, -3, 3, 3, 4));
        C("bce_with_logits pos_weight Mean", R(1, -4, 4, 3, 4), R(2, 0, 1, 3, 4));
        C("bce_with_logits pos_weight Sum", R(1, -4, 4, 3, 4), R(2, 0, 1, 3, 4));
        C("layer_norm with γ, β", R(1, -2, 2, 3, 5), R(2, 0.5, 1.5, 5), R(3, -0.5, 0.5, 5));
        C("layer_norm without γ, β", R(1, -2, 2, 3, 5));
        C("layer_norm eps 0.1", R(1, -0.3, 0.3, 3, 5), R(2, 0.5, 1.5, 5), R(3, -0.5, 0.5, 5));
        C("batch_norm training", R(1, -2, 2, 5, 4), R(2, 0.5, 1.5, 4), R(3, -0.5, 0.5, 4));
        C("batch_norm training without γ, β", R(1, -2, 2, 5, 4));
        C("batch_norm eval", R(1, -2, 2, 5, 4), R(2, 0.5, 1.5, 4), R(3, -0.5, 0.5, 4));
        C("dropout fixed mask", R(1, -1, 1, 3, 4));
        C("dropout eval", R(1, -1, 1, 3, 4));
        C("dropout into a loss", R(1, -1, 1, 3, 4), R(2, -1, 1, 3, 4));
        C("x used twice", R(1, -1, 1, 3, 4));
        C("two-layer net", R(1, -1, 1, 2, 3), R(2, -1, 1, 4, 3), R(3, -1, 1, 4), R(4, -1, 1, 3, 4));
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardMatchesFiniteDifferences(Case c)
    {
        var report = GradientCheck.Check(v => Build(c.Name, v), c.Inputs);
        Assert.NotEmpty(report.Entries);
        foreach (var e in report.Entries)
            Assert.True(e.Passed, $"{c.Name}: {e.Name} max abs error {e.MaxAbsError:E2} at {string.Join(",", e.WorstIndex)} (analytic {e.WorstAnalytic}, numeric {e.WorstNumeric})");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Float32AgreesWithFloat64(Case c)
    {
        var t64 = new Tape<double>();
        var l64 = c.Inputs.Select((t, i) => t64.Leaf(t.Clone(), true, $"x{i}")).ToArray();
        var y64 = Build(c.Name, l64);
        var t32 = new Tape<float>();
        var l32 = c.Inputs.Select((t, i) => t32.Leaf(t.Cast<float>(), true, $"x{i}")).ToArray();
        var y32 = Build(c.Name, l32);

        double yScale = 1 + y64.Value.Data.ToArray().Select(Math.Abs).Max();
        for (int k = 0; k < y64.Value.Length; k++)
            Assert.True(Math.Abs(y64.Value.Data[k] - y32.Value.Data[k]) <= 1e-5 * yScale, $"{c.Name}: y[{k}] float32 {y32.Value.Data[k]} vs float64 {y64.Value.Data[k]}");

        var seed = Tensor<double>.Random(new Random(5), -1, 1, y64.Value.ShapeArray);
        if (y64.Value.Length == 1) { t64.Backward(y64); t32.Backward(y32); }
        else { t64.Backward(y64, seed); t32.Backward(y32, seed.Cast<float>()); }
        for (int i = 0; i < l64.Length; i++)
        {
            var g64 = l64[i].Grad.Data.ToArray(); var g32 = l32[i].Grad.Data.ToArray();
            double scale = 1 + g64.Select(Math.Abs).Max();
            for (int k = 0; k < g64.Length; k++)
                Assert.True(Math.Abs(g64[k] - g32[k]) <= 1e-4 * scale, $"{c.Name}: dx{i}[{k}] float32 {g32[k]} vs float64 {g64[k]}");
        }
    }
}
