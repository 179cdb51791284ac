using BenchmarkDotNet.Attributes;
using Backprop.Kernels;

namespace Backprop.Benchmarks;

/// <summary>Gemm.Multiply float32: square n=256/1024 and the training shapes, at 1 and 2 threads.</summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private float[] _a = [], _b = [], _c = [];
    private ComputeContext _context = ComputeContext.Default;
    private (string Name, bool TransA, bool TransB, int M, int N, int K) _s;

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "";

    [Params(1, 2)]
    public int Threads { get; set; }

    public static IEnumerable<string> Shapes => GemmShapes.All.Select(s => s.Name);

    [GlobalSetup]
    public void Setup()
    {
        _s = GemmShapes.All.First(s => s.Name == Shape);
        var rng = new Random(42);
        _a = Enumerable.Range(0, _s.M * _s.K).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        _b = Enumerable.Range(0, _s.K * _s.N).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        _c = new float[_s.M * _s.N];
        _context = new ComputeContext(Threads);
    }

    [GlobalCleanup]
    public void Cleanup() => _context.Dispose();

    [Benchmark]
    public void Multiply() => Gemm.Multiply<float>(_context, _s.TransA, _s.TransB, _s.M, _s.N, _s.K, _a, _b, _c, false);
}
