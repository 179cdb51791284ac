using BenchmarkDotNet.Running;
using Backprop.Kernels;

namespace Backprop.Benchmarks;

public static class Program
{
    /// <summary>
    /// <c>quick [threads...]</c> prints GemmBenchmark GFLOPS for the standard shapes without BenchmarkDotNet;
    /// <c>shape M N K THREADS [tA] [tB] [f64]</c> one shape; anything else goes to BenchmarkDotNet's switcher.
    /// </summary>
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "quick")
        {
            int[] threads = args.Length > 1 ? args[1..].Select(int.Parse).ToArray() : [1, 2];
            foreach (var t in threads)
            {
                using var context = new ComputeContext(t);
                foreach (var (name, tA, tB, m, n, k) in GemmShapes.All)
                    Console.WriteLine($"{name,-28} threads={t}  {GemmBenchmark.Run(m, n, k, false, tA, tB, context: context):F1} GFLOPS");
            }
            return 0;
        }
        if (args.Length >= 5 && args[0] == "shape")
        {
            int m = int.Parse(args[1]), n = int.Parse(args[2]), k = int.Parse(args[3]), t = int.Parse(args[4]);
            // "fixed": start from the constants of the reference machine instead of the blocks derived from this CPU's caches.
            var tuning = args.Contains("fixed") ? KernelTuning.Fixed : KernelTuning.Default;
            foreach (var kv in args.Where(x => x.Contains('=')))
            {
                // Tuning knobs: kc=<depth for float NR=32>, mc=<bytes of the packed A block>, nc=<columns>, direct=<rows>.
                var parts = kv.Split('=');
                int v = int.Parse(parts[1]);
                switch (parts[0])
                {
                    case "kc": tuning = tuning with { KcBytes = v * 4 * 32, Float64KcBytes = null }; break;
                    case "mc": tuning = tuning with { McBytes = v }; break;
                    case "nc": tuning = tuning with { Nc = v }; break;
                    case "direct": tuning = tuning with { DirectBMaxRows = v }; break;
                    case "chunks": tuning = tuning with { ChunksPerThread = v }; break;
                }
            }
            bool tA = args.Contains("tA"), tB = args.Contains("tB"), f64 = args.Contains("f64");
            using var shapeContext = new ComputeContext(t, tuning);
            Console.WriteLine($"kc_bytes={tuning.KcBytes} float64_kc_bytes={tuning.Float64KcBytes} mc_bytes={tuning.McBytes} nc={tuning.Nc} caches={CpuCaches.ThisCpu}");
            Console.WriteLine($"{m}x{n}x{k} tA={tA} tB={tB} f64={f64} threads={t}: {GemmBenchmark.Run(m, n, k, f64, tA, tB, context: shapeContext):F1} GFLOPS");
            return 0;
        }
        if (args.Length >= 2 && args[0] == "pfc")
        {
            // C tiles prefetched (KernelTuning.PrefetchCBytes, this CPU's) against never, 8 rounds alternating in this
            // process at 1 thread: `pfc M N K [tB] [f64]` for a product, `pfc train` for the 784-512-512-10 batch-128 step,
            // `pfc train-wide` for 784-1024-1024-10 at batch 256
            var ra = new List<double>(); var rb = new List<double>();
            for (int r = 0; r < 8; r++)
            {
                foreach (var on in new[] { false, true })
                {
                    using var pfcContext = new ComputeContext(1, on ? KernelTuning.Default : KernelTuning.Default with { PrefetchCBytes = long.MaxValue });
                    double g = args[1] == "train"
                        ? Backprop.Training.TrainBenchmark.Run([784, 512, 512, 10], 128, 300, pfcContext, warmupSeconds: 0.1).Gflops
                        : args[1] == "train-wide"
                        ? Backprop.Training.TrainBenchmark.Run([784, 1024, 1024, 10], 256, 40, pfcContext, warmupSeconds: 0.1).Gflops
                        : GemmBenchmark.Run(int.Parse(args[1]), int.Parse(args[2]), int.Parse(args[3]), args.Contains("f64"), false, args.Contains("tB"), context: pfcContext);
                    (on ? rb : ra).Add(g);
                }
                Console.WriteLine($"round {r}: off {ra[^1]:F1} on {rb[^1]:F1} ratio {rb[^1] / ra[^1]:F3}");
            }
            var ratios = ra.Zip(rb, (x, y) => y / x).Order().ToList();
            Console.WriteLine($"median ratio on/off {ratios[ratios.Count / 2]:F3}");
            return 0;
        }
        if (args.Length >= 1 && args[0] == "kernel")
        {
            // The AVX-512 micro-kernel alone on L1-resident panels: the in-core ceiling.
            int kc = args.Length > 1 ? int.Parse(args[1]) : 256;
            Console.WriteLine($"12x2 kc={kc}: {KernelProbe.Run<Avx512Kernel<float>>(kc):F1} GFLOPS");
            return 0;
        }
        if (args.Length >= 2 && args[0] == "optimizer")
        {
            // The fused Adam and SGD-with-momentum passes alone at each width on N float parameters: nanoseconds per
            // element, best of 20 runs, and the bytes a second that makes (Adam moves 28 bytes a parameter, SGD 20)
            int n = int.Parse(args[1]);
            foreach (var width in new[] { UpdateWidth.Vector512, UpdateWidth.Vector, UpdateWidth.Scalar })
            {
                double adam = OptimizerProbe.AdamNsPerElement(width, n), sgd = OptimizerProbe.SgdNsPerElement(width, n);
                Console.WriteLine($"adam n={n} {width,-9}: {adam:F3} ns/element ({28 / adam:F1} GB/s); sgd: {sgd:F3} ns/element ({20 / sgd:F1} GB/s)");
            }
            return 0;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}

/// <summary>The shapes that matter: square, and the MLP training shapes (batch 128, 784→512→512→10).</summary>
public static class GemmShapes
{
    public static readonly (string Name, bool TransA, bool TransB, int M, int N, int K)[] All =
    [
        ("square 256", false, false, 256, 256, 256),
        ("square 1024", false, false, 1024, 1024, 1024),
        ("fwd X·W1ᵀ 128x512x784", false, true, 128, 512, 784),
        ("fwd X·W2ᵀ 128x512x512", false, true, 128, 512, 512),
        ("fwd X·W3ᵀ 128x10x512", false, true, 128, 10, 512),
        ("dW1 dYᵀ·X 512x784x128", true, false, 512, 784, 128),
        ("dW2 dYᵀ·X 512x512x128", true, false, 512, 512, 128),
        ("dW3 dYᵀ·X 10x512x128", true, false, 10, 512, 128),
        ("dX2 dY·W2 128x512x512", false, false, 128, 512, 512),
        ("dX3 dY·W3 128x512x10", false, false, 128, 512, 10),
        ("small 32x128x784", false, false, 32, 128, 784),
    ];
}
