using System.Numerics;
using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Tests.Autodiff;

/// <summary>
/// Fusing a dense layer with its element-wise activation (forward: h = f(z) per finished GEMM block; backward:
/// dz = dh ⊙ f′(z) per finished block of dh) changes where the work happens, never the numbers.
/// In the GEMM collection: it sets the global kernel thread count.
/// </summary>
[Collection(GemmCollection.Name)]
public class FusionTests
{
    public static IEnumerable<object[]> Cases() =>
        from act in new[] { "relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus", "gelu", "silu", "identity" }
        from threads in new[] { 1, 2 }
        select new object[] { act, threads };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedReplayIsBitIdenticalToUnfused_Float(string activation, int threads) => Compare<float>(activation, threads);

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedReplayIsBitIdenticalToUnfused_Double(string activation, int threads) => Compare<double>(activation, threads);

    private static void Compare<T>(string activation, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int savedThreads = KernelThreads.Count;
        long savedMin = Gemm.MinMacsPerThread;
        KernelThreads.Count = threads;
        Gemm.MinMacsPerThread = threads > 1 ? 1 : savedMin; // split even these small products across threads
        try
        {
            // Odd sizes: partial register tiles and uneven thread splits; a 40-wide layer takes the packed path,
            // the 5-wide output the narrow dot-product path.
            int[] sizes = [37, 40, 29, 5];
            const int batch = 19;
            var net = Initializers.Mlp<T>(sizes, activation, seed: 4);
            var rng = new Random(5);
            var x = Enumerable.Range(0, batch * sizes[0]).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var y = Enumerable.Range(0, batch).Select(_ => rng.Next(sizes[^1])).ToArray();

            (T[][] values, T[][] grads, List<string> backwardOps) Run(bool fusion)
            {
                var step = new CompiledStep<T>(net, batch);
                step.Tape.Fusion = fusion;
                var ran = new List<string>();
                step.Tape.Profiler = (v, forward, _, _) => { if (!forward) ran.Add(v.Op!.Name); };
                step.Load(x, y);
                step.ForwardBackward();
                step.Tape.Profiler = null;
                var tr = step.Trace;
                var values = tr.Z.Concat(tr.H).Select(v => v.Value.Data.ToArray()).Append(step.Loss.Value.Data.ToArray()).ToArray();
                var grads = tr.Z.Concat(tr.H.Take(tr.H.Count - 1)).Concat(net.Parameters()).Select(v => v.Grad.Data.ToArray()).ToArray();
                return (values, grads, ran);
            }

            var plain = Run(fusion: false);
            var fused = Run(fusion: true);
            Assert.Equal(plain.values.Length, fused.values.Length);
            for (int i = 0; i < plain.values.Length; i++) Assert.Equal(plain.values[i], fused.values[i]);
            for (int i = 0; i < plain.grads.Length; i++) Assert.Equal(plain.grads[i], fused.grads[i]);

            // The fused pass really fused: the hidden activations' own backward rules did not run.
            Assert.Contains(activation == "identity" ? "linear" : activation, plain.backwardOps);
            if (activation != "identity") Assert.DoesNotContain(activation, fused.backwardOps);
        }
        finally
        {
            KernelThreads.Count = savedThreads;
            Gemm.MinMacsPerThread = savedMin;
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
        int savedThreads = KernelThreads.Count;
        long savedMin = Gemm.MinMacsPerThread;
        KernelThreads.Count = threads;
        Gemm.MinMacsPerThread = 1;
        try
        {
            var rng = new Random(m * n + k);
            var a = Enumerable.Range(0, m * k).Select(_ => rng.NextDouble()).ToArray();
            var b = Enumerable.Range(0, k * n).Select(_ => rng.NextDouble()).ToArray();
            var want = new double[m * n];
            Gemm.Reference<double>(false, transB, m, n, k, a, b, want, false);
            var c = new double[m * n];
            var finish = new RecordingFinish(c, want, n);
            Gemm.Multiply<double>(false, transB, m, n, k, a, b, c, false, finish: finish);
            Assert.All(finish.Times, t => Assert.Equal(1, t));
        }
        finally
        {
            KernelThreads.Count = savedThreads;
            Gemm.MinMacsPerThread = savedMin;
        }
    }
}
