using System.Numerics;
using Backprop.Kernels;
using Backprop.Tests.Nn;
using Backprop.Training;

namespace Backprop.Tests.Autodiff;

/// <summary>
/// Fusing a dense layer with its element-wise activation (forward: h = f(z) per finished GEMM block; backward:
/// dz = dh ⊙ f′(z) per finished block of dh) changes where the work happens, never the numbers.
/// In the GEMM collection: it sets the global kernel thread count.
/// </summary>
public class FusionTests
{
    /// <summary>Every hidden-layer activation of the registry, the test-only ones included (one fuses forward, one declares it must not).</summary>
    public static IEnumerable<object[]> Cases() =>
        from act in TestKinds.Catalog.Activations.HiddenNames
        from threads in new[] { 1, 2 }
        select new object[] { act, threads };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedReplayIsBitIdenticalToUnfused_Float(string activation, int threads) => Compare<float>(activation, threads);

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedReplayIsBitIdenticalToUnfused_Double(string activation, int threads) => Compare<double>(activation, threads);

    /// <summary>
    /// Layers 1–3 units wide, and a 35-wide layer whose 2-thread split leaves a 3-column block: TensorPrimitives rounds
    /// such short spans differently, so sigmoid and tanh are applied to the whole of z, not block by block.
    /// </summary>
    [Theory]
    [InlineData("sigmoid")]
    [InlineData("tanh")]
    [InlineData("relu")]
    [InlineData("gelu")]
    public void NarrowBlocksAreBitIdenticalToo(string activation)
    {
        Compare<float>(activation, 1, [6, 3, 3, 2], 16);
        Compare<float>(activation, 2, [6, 3, 3, 2], 16);
        Compare<double>(activation, 2, [6, 1, 3, 2], 16);
        var oneThread = Compare<float>(activation, 1, [1000, 35, 2], 32);
        var twoThreads = Compare<float>(activation, 2, [1000, 35, 2], 32);
        Assert.Equal(oneThread, twoThreads); // and the same whatever the thread count
    }

    /// <summary>
    /// An activation's input that the consuming layer also reads as its weight: the layer's dW is a second write to
    /// that gradient, so the tape must not fuse (a fused activation backward would overwrite instead of adding).
    /// </summary>
    [Fact]
    public void NoBackwardFusionWhenTheActivationInputHasAnotherConsumer()
    {
        double[] Grad(bool fusion)
        {
            var tape = new Tape<double>();
            var w = tape.Leaf(Tensor<double>.Random(new Random(3), -1, 1, 4, 4), requiresGrad: true, "W");
            var loss = Functional.Sum(Functional.Linear(Functional.Tanh(w), w));
            tape.Fusion = fusion;
            tape.Forward();
            tape.Backward(loss);
            return w.Grad.Data.ToArray();
        }
        Assert.Equal(Grad(false), Grad(true));
    }

    /// <summary>
    /// One step of an MLP (float inputs, random class targets) replayed unfused and fused: every value, the loss and
    /// every gradient must be equal bit for bit, and the fused pass must really have absorbed the hidden activations'
    /// backward rules. Returns the fused run's numbers, to compare across thread counts.
    /// </summary>
    private static float[] Compare<T>(string activation, int threads, int[]? sizes = null, int batch = 19)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // Default: odd sizes, so partial register tiles and uneven thread splits; a 40-wide layer takes the packed
        // path, the 5-wide output the narrow dot-product path.
        sizes ??= [37, 40, 29, 5];
        // Split even these small products across threads.
        using var context = new ComputeContext(threads, threads > 1 ? KernelTuning.Default with { MinMacsPerThread = 1 } : null);
        {
            var net = Initializers.Mlp<T>(sizes, activation, seed: 4, catalog: TestKinds.Catalog);
            var rng = new Random(5);
            var x = Enumerable.Range(0, batch * sizes[0]).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var y = Enumerable.Range(0, batch).Select(_ => rng.Next(sizes[^1])).ToArray();

            (T[][] numbers, List<string> backwardOps, List<string> fusedForward) Run(bool fusion)
            {
                var step = new TrainingStep<T>(net, batch, context);
                step.Tape.Fusion = fusion;
                var ran = new List<string>();
                var fusedForward = new List<string>();
                step.Tape.Profiler = (v, forward, _, fusedWith) =>
                {
                    if (!forward) ran.Add(v.Op!.Name);
                    else if (fusedWith is not null) fusedForward.Add(fusedWith.Op!.Name);
                };
                step.Load(x, y);
                step.ForwardBackward();
                step.Tape.Profiler = null;
                var tr = step.Trace;
                var values = tr.Z.Concat(tr.H).Select(v => v.Value.Data.ToArray()).Append(step.Loss.Value.Data.ToArray());
                var grads = tr.Z.Concat(tr.H.Take(tr.H.Count - 1)).Concat(net.Parameters()).Select(v => v.Grad.Data.ToArray());
                return (values.Concat(grads).ToArray(), ran, fusedForward);
            }

            var plain = Run(fusion: false);
            var fused = Run(fusion: true);
            Assert.Equal(plain.numbers.Length, fused.numbers.Length);
            for (int i = 0; i < plain.numbers.Length; i++)
                Assert.True(plain.numbers[i].SequenceEqual(fused.numbers[i]), $"{activation} {string.Join("-", sizes)} threads {threads}: array {i} differs");

            // The fused pass really fused: the hidden activations' own backward rules did not run.
            Assert.Contains(activation == "identity" ? "linear" : activation, plain.backwardOps);
            if (activation != "identity") Assert.DoesNotContain(activation, fused.backwardOps);
            // ... and fused forward exactly where the activation declares block-wise application exact
            var declared = TestKinds.Catalog.Activations.Create<T>(activation);
            if (!declared.IsIdentity) Assert.Equal(declared.ForwardIsPiecewiseExact, fused.fusedForward.Contains(activation));
            Assert.Empty(plain.fusedForward);
            return fused.numbers.SelectMany(a => a).Select(v => float.CreateTruncating(v)).ToArray();
        }
    }

    /// <summary>A finisher that checks each block it is handed is already the final product, and counts coverage.</summary>
    private sealed class RecordingFinish(double[] c, double[] want, int n) : IGemmBlockFinish
    {
        public readonly int[] Times = new int[want.Length];

        public void Finish(int i0, int i1, int j0, int j1)
        {
            lock (Times)
            {
                for (int i = i0; i < i1; i++)
                    for (int j = j0; j < j1; j++)
                    {
                        Assert.Equal(want[i * n + j], c[i * n + j], 1e-9);
                        Times[i * n + j]++;
                    }
            }
        }
    }

    /// <summary>Every path (tiny loop, narrow dot products, packed serial, split by rows or columns) finishes every element exactly once, after computing it.</summary>
    [Theory]
    [InlineData(3, 4, 5, false, 1)]        // tiny
    [InlineData(33, 10, 64, true, 1)]      // narrow A·Bᵀ, dot products
    [InlineData(45, 70, 33, false, 1)]     // packed, one thread
    [InlineData(45, 70, 33, false, 2)]     // split by columns
    [InlineData(90, 20, 33, false, 2)]     // split by rows
    [InlineData(5, 8, 0, false, 2)]        // k = 0
    public void EveryElementIsFinishedOnceAfterItIsComputed(int m, int n, int k, bool transB, int threads)
    {
        using var context = new ComputeContext(threads, KernelTuning.Default with { MinMacsPerThread = 1 });
        {
            var rng = new Random(m * n + k);
            var a = Enumerable.Range(0, m * k).Select(_ => rng.NextDouble()).ToArray();
            var b = Enumerable.Range(0, k * n).Select(_ => rng.NextDouble()).ToArray();
            var want = new double[m * n];
            Gemm.Reference<double>(false, transB, m, n, k, a, b, want, false);
            var c = new double[m * n];
            var finish = new RecordingFinish(c, want, n);
            Gemm.Multiply<double>(context, false, transB, m, n, k, a, b, c, false, finish: finish);
            Assert.All(finish.Times, t => Assert.Equal(1, t));
        }
    }
}
