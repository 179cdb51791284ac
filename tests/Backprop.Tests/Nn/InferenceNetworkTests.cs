using System.Numerics;
using System.Runtime.Intrinsics.X86;
using Backprop.Kernels;
using Backprop.Nn;
using Backprop.Nn.Inference;

namespace Backprop.Tests.Nn;

/// <summary>
/// The compiled inference path against the tape's evaluation forward pass on the same context: every layer kind,
/// activation, precision, GEMM family, batch size and thread count, bit for bit (a zero's sign aside: both paths may
/// skip exact zero products).
/// </summary>
public class InferenceNetworkTests
{
    public static IEnumerable<object[]> Cases() =>
        from path in new[] { nameof(GemmPath.Avx512), nameof(GemmPath.Avx2), nameof(GemmPath.Portable) }
        from f64 in new[] { false, true }
        from threads in new[] { 1, 2 }
        select new object[] { path, f64, threads };

    private static bool Supported(GemmPath p) => ComputeContext.IsSupported(p);

    /// <summary>With several threads even small products are split, so that the threaded edges run.</summary>
    private static ComputeContext Context(GemmPath path, int threads) =>
        new(threads, threads > 1 ? KernelTuning.Default with { MinMacsPerThread = 1 } : null, path);

    /// <summary>
    /// dense (13 inputs: a tiny product at batch 1) → layer norm → dense without bias (70 outputs: a ragged last panel)
    /// → batch norm with running statistics → dropout → dense to 5 (the narrow dot-product path), all with
    /// <paramref name="activation"/> where the kind takes one; random weights and statistics.
    /// </summary>
    internal static Sequential<T> Network<T>(string activation, int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Activation<T> F() => Activations.Create<T>(activation);
        var layers = new ILayer<T>[]
        {
            new DenseLayer<T>(13, 33, F()),
            new LayerNormLayer<T>(33, F()),
            new DenseLayer<T>(33, 70, F(), bias: false),
            new BatchNormLayer<T>(70, F()) { Training = false },
            new DropoutLayer<T>(70, 0.3),
            new DenseLayer<T>(70, 5, new Identity<T>()),
        };
        var rng = new Random(seed);
        foreach (var layer in layers)
        {
            foreach (var p in layer.Parameters)
            {
                var s = p.Value.Value.Span;
                for (int i = 0; i < s.Length; i++)
                    s[i] = T.CreateChecked(p.Role == ParameterRole.Scale ? 0.5 + rng.NextDouble() : (rng.NextDouble() * 2 - 1) * 0.4);
            }
            foreach (var b in layer.Buffers)
            {
                var s = b.Value.Span;
                for (int i = 0; i < s.Length; i++)
                    s[i] = T.CreateChecked(b.Name == "running_var" ? 0.2 + rng.NextDouble() : rng.NextDouble() - 0.5);
            }
        }
        return new Sequential<T>(layers);
    }

    internal static Tensor<T> Input<T>(int rows, int cols, int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rng = new Random(seed);
        var x = new Tensor<T>(rows, cols);
        var s = x.Span;
        // a quarter exact zeros, as images and ReLU outputs have: the zero-skipping paths run too
        for (int i = 0; i < s.Length; i++) s[i] = rng.Next(4) == 0 ? T.Zero : T.CreateChecked(rng.NextDouble() * 2 - 1);
        return x;
    }

    private static void AssertSameBits<T>(Tensor<T> expected, Tensor<T> actual, string what) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Assert.Equal(expected.ShapeArray, actual.ShapeArray);
        var e = expected.Span; var a = actual.Span;
        for (int i = 0; i < e.Length; i++)
            Assert.True(e[i] == a[i] || (T.IsNaN(e[i]) && T.IsNaN(a[i])), $"{what}: element {i} is {a[i]}, the tape gives {e[i]}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EqualsTheTapeEvaluationForwardForEveryKindAndActivation(string pathName, bool float64, int threads)
    {
        var path = Enum.Parse<GemmPath>(pathName);
        if (!Supported(path)) return;   // this CPU cannot run the family: nothing to compare here
        if (float64) Check<double>(path, threads); else Check<float>(path, threads);
    }

    private static void Check<T>(GemmPath path, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var context = Context(path, threads);
        foreach (var activation in Activations.Names)
        {
            var net = Network<T>(activation, seed: activation.Length);
            var compiled = InferenceNetwork<T>.Compile(net, context);
            Assert.Equal(5, compiled.Steps.Count);   // dropout compiles to nothing
            foreach (int batch in new[] { 1, 7, 128 })
            {
                var x = Input<T>(batch, 13, batch);
                var expected = net.Predict(x, context);
                AssertSameBits(expected, compiled.Predict(x), $"{activation}, batch {batch}, {path}, {threads} thread(s)");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ReferenceWidthProductsMatchWithThePackedAndOneRowPaths(int threads)
    {
        // 784-512-512-10: packed panels at batch 128, the one-row path at batch 1, the narrow path for the 10 outputs;
        // at batch 128 and 300 two threads split the rows (in blocks of 8, the last one short) instead of the columns
        var net = Backprop.Training.Initializers.Mlp<float>([784, 512, 512, 10], "relu", 3, InitKind.HeUniform);
        using var context = new ComputeContext(threads);
        var compiled = InferenceNetwork<float>.Compile(net, context);
        foreach (int batch in new[] { 1, 7, 128, 300 })
        {
            var x = Input<float>(batch, 784, batch + 10);
            AssertSameBits(net.Predict(x, context), compiled.Predict(x), $"batch {batch}, {threads} thread(s)");
        }
    }

    public static IEnumerable<object[]> LargeBatchCases() =>
        from batch in new[] { 1025, 1500, 2049, 3000 }
        from f64 in new[] { false, true }
        from threads in new[] { 1, 2 }
        select new object[] { batch, f64, threads };

    [Theory]
    [MemberData(nameof(LargeBatchCases))]
    public void BatchesLargerThanAPassEqualTheTape(int batch, bool float64, int threads)
    {
        if (float64) LargeBatch<double>(batch, threads); else LargeBatch<float>(batch, threads);
    }

    /// <summary>
    /// Batches over <see cref="InferenceNetwork{T}.RowsPerPass"/> rows run in passes; each pass must take the GEMM path
    /// (tiny, narrow, packed, one-row) and the activation rounding (spans shorter than a vector) the whole batch takes
    /// on the tape. 1025 and 2049 rows once left a last pass of one row: 4-100-3 then ran its products in the tiny loop.
    /// </summary>
    private static void LargeBatch<T>(int batch, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var context = new ComputeContext(threads);
        var nets = new (string Name, Sequential<T> Net)[]
        {
            ("4-100-3 relu", Backprop.Training.Initializers.Mlp<T>([4, 100, 3], "relu", 1, InitKind.HeUniform)),
            ("1-1 (one multiply-add a row)", Backprop.Training.Initializers.Mlp<T>([1, 1], "relu", 2, InitKind.HeUniform)),
            ("2-3-1 sigmoid (spans shorter than a vector in a one-row pass)", Backprop.Training.Initializers.Mlp<T>([2, 3, 1], "sigmoid", 3, InitKind.XavierUniform)),
            ("every kind, tanh", Network<T>("tanh", 6)),
        };
        foreach (var (name, net) in nets)
        {
            var compiled = InferenceNetwork<T>.Compile(net, context);
            var x = Input<T>(batch, net.Inputs, batch + threads);
            AssertSameBits(net.Predict(x, context), compiled.Predict(x), $"{name}, batch {batch}, {threads} thread(s)");
        }
    }

    [Theory]
    [InlineData(1500)]
    [InlineData(2049)]
    public void PassesStayOutOfTheTinyProductsWhateverTheTuning(int batch)
    {
        // a tiny-product bound raised by the caller: 4-100-3's second product on a pass of 476 (or of 750) rows is
        // 142,800 (225,000) multiply-adds, in the tiny loop under this bound, where the whole batch's product is not
        using var context = new ComputeContext(1, KernelTuning.Default with { TinyMacs = 250_000 });
        var net = Backprop.Training.Initializers.Mlp<float>([4, 100, 3], "relu", 4, InitKind.HeUniform);
        var compiled = InferenceNetwork<float>.Compile(net, context);
        var x = Input<float>(batch, 4, 5);
        AssertSameBits(net.Predict(x, context), compiled.Predict(x), $"batch {batch}, TinyMacs 250,000");
    }

    [Fact]
    public void ABatchOfOneIsSplitByTheWeightsBytesNotItsMultiplyAdds()
    {
        // 784×512 and 512×512 weights (1.6 and 1 MB) at batch 1: 0.4 and 0.26 million multiply-adds, under the 2^19 a
        // thread that splits a product, but over the 256 KiB of weight a thread that splits a packed one
        var net = Backprop.Training.Initializers.Mlp<float>([784, 512, 512, 10], "relu", 5, InitKind.HeUniform);
        using var two = new ComputeContext(2);
        var compiled = InferenceNetwork<float>.Compile(net, two);
        var x = Input<float>(1, 784, 11);
        var expected = net.Predict(x, two);
        long before = two.Pool.JobsRun;
        var got = compiled.Predict(x);
        Assert.Equal(before + 2, two.Pool.JobsRun);   // the two wide layers, each split once
        AssertSameBits(expected, got, "batch 1, 2 threads");
        using var unsplit = new ComputeContext(2, KernelTuning.Default with { MinPackedBytesPerThread = long.MaxValue });
        var serial = InferenceNetwork<float>.Compile(net, unsplit);
        before = unsplit.Pool.JobsRun;
        AssertSameBits(expected, serial.Predict(x), "batch 1, not split");
        Assert.Equal(before, unsplit.Pool.JobsRun);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(1, KernelTuning.Default with { MinPackedBytesPerThread = 0 }));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TrainerPredictGivesTheTapeOutputsOnAllRowsWhateverTheBatchSize(bool float64)
    {
        if (float64) TrainerPredict<double>(); else TrainerPredict<float>();
    }

    private static void TrainerPredict<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        // batches of 10 rows once gave the tape's outputs batch by batch, 10, 10 and 3 rows: rows 8 and 9 then ended a
        // narrow product (70 → 5), which sums its last m mod 4 rows in another order than the whole batch's
        var data = Features(23, 13, seed: 3);
        using var context = new ComputeContext(1);
        var net = Network<T>("silu", 4);
        var want = net.Predict(Converted<T>(data), context);
        foreach (int batchSize in new[] { 10, 1000 })
            AssertSameBits(want, Backprop.Training.Trainer<T>.Predict(net, data, batchSize, context), $"Trainer.Predict, batches of {batchSize}");
        // 1001 rows in batches of 1000 once ran the last row alone: 4-100-3's products on it took the tiny loop
        var wide = Features(1001, 4, seed: 5);
        var mlp = Backprop.Training.Initializers.Mlp<T>([4, 100, 3], "relu", 1, InitKind.HeUniform);
        AssertSameBits(mlp.Predict(Converted<T>(wide), context), Backprop.Training.Trainer<T>.Predict(mlp, wide, 1000, context), "Trainer.Predict, 1001 rows");
    }

    private static Backprop.Data.LabeledData Features(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var features = new float[rows * cols];
        for (int i = 0; i < features.Length; i++) features[i] = (float)(rng.NextDouble() * 2 - 1);
        return new Backprop.Data.LabeledData(features, new int[rows], cols, null, 0);
    }

    private static Tensor<T> Converted<T>(Backprop.Data.LabeledData data) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var x = new Tensor<T>(data.Count, data.FeatureCount);
        for (int i = 0; i < data.Features.Length; i++) x.Span[i] = T.CreateChecked(data.Features[i]);
        return x;
    }

    [Fact]
    public void IsASnapshotThatLaterTrainingDoesNotChange()
    {
        var net = Network<double>("tanh", 1);
        var compiled = InferenceNetwork<double>.Compile(net);
        var x = Input<double>(4, 13, 2);
        var before = compiled.Predict(x);
        net.Layers[0].Parameters[0].Value.Value.Span[0] += 1;
        AssertSameBits(before, compiled.Predict(x), "after the network changed");
        Assert.False(net.Layers.OfType<BatchNormLayer<double>>().Single().Training);   // the original's mode is its own
    }

    [Fact]
    public void ConcurrentCallersGetTheSingleThreadedResult()
    {
        var net = Network<float>("relu", 5);
        using var context = new ComputeContext(2);
        var compiled = InferenceNetwork<float>.Compile(net, context);
        var inputs = Enumerable.Range(0, 8).Select(i => Input<float>(1 + 9 * i, 13, i)).ToArray();
        var expected = inputs.Select(x => net.Predict(x, context)).ToArray();
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
            AssertSameBits(expected[i % 8], compiled.Predict(inputs[i % 8]), $"call {i}"));
    }

    [Fact]
    public void AKindWithoutItsOwnStepRunsItsTapeForwardPass()
    {
        var layer = new DenseLayer<double>(3, 2, new Tanh<double>());
        ILayer<double> plain = new WithoutStep(layer);
        for (int i = 0; i < 6; i++) layer.Weight.Value.Span[i] = i * 0.1 - 0.2;
        var net = new Sequential<double>([plain]);
        var compiled = InferenceNetwork<double>.Compile(net);
        Assert.IsType<TapeInferenceStep<double>>(compiled.Steps.Single());
        var x = Input<double>(3, 3, 9);
        AssertSameBits(net.Predict(x), compiled.Predict(x), "tape step");
    }

    [Fact]
    public void AWarmCallAllocatesNothing()
    {
        var net = Backprop.Training.Initializers.Mlp<float>([64, 48, 10], "gelu", 1);
        using var context = new ComputeContext(1);
        var compiled = InferenceNetwork<float>.Compile(net, context);
        var x = Input<float>(32, 64, 1);
        var y = new float[32 * 10];
        compiled.Predict(x.Span, y, 32);
        compiled.Predict(x.Span, y, 1);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) { compiled.Predict(x.Span, y, 32); compiled.Predict(x.Span, y, 1); }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>A layer that forwards everything to a dense layer except the compiled step (the interface's default).</summary>
    private sealed class WithoutStep(DenseLayer<double> inner) : ILayer<double>
    {
        public string Kind => inner.Kind;
        public int Inputs => inner.Inputs;
        public int Outputs => inner.Outputs;
        public Activation<double> Activation => inner.Activation;
        public IReadOnlyList<LayerParameter<double>> Parameters => inner.Parameters;
        public IReadOnlyList<LayerBuffer<double>> Buffers => inner.Buffers;
        public bool Training { get => inner.Training; set => inner.Training = value; }
        public LayerOutput<double> Forward(Var<double> x) => inner.Forward(x);
        public string ExportOnnx(IOnnxGraph graph, string input, string prefix, string? output) => inner.ExportOnnx(graph, input, prefix, output);
        public ILayer<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut> =>
            typeof(TOut) == typeof(double) ? (ILayer<TOut>)(object)new WithoutStep((DenseLayer<double>)inner.Cast<double>()) : inner.Cast<TOut>();
        public string Describe() => inner.Describe();
    }
}
