using System.Numerics;
using Backprop.Kernels;

namespace Backprop.Tests.Kernels;

/// <summary>
/// Products with a B packed once give the bits of <see cref="Gemm.Multiply{T}(ComputeContext, bool, bool, int, int, int, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, bool, bool, IGemmBlockFinish?)"/>
/// (A·Bᵀ, C prefilled with the starting row and accumulated) on every GEMM family, precision and thread count, over
/// edge shapes: one row (the matrix-vector path), ragged tiles and panels, several depth blocks, the tiny and narrow paths.
/// </summary>
public class PackedMatrixTests
{
    public static IEnumerable<object[]> Cases() =>
        from p in new[] { nameof(GemmPath.Avx512), nameof(GemmPath.Avx2), nameof(GemmPath.Portable) }
        from f64 in new[] { false, true }
        from threads in new[] { 1, 2 }
        select new object[] { p, f64, threads };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EqualsGemmBitForBit(string pathName, bool float64, int threads)
    {
        var path = Enum.Parse<GemmPath>(pathName);
        if (!ComputeContext.IsSupported(path)) return;   // this CPU cannot run the family: nothing to compare here
        using var context = new ComputeContext(threads, threads > 1 ? KernelTuning.Default with { MinMacsPerThread = 1 } : null, path);
        if (float64) Grid<double>(context); else Grid<float>(context);
    }

    private static void Grid<T>(ComputeContext context) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rng = new Random(7);
        foreach (int k in new[] { 0, 13, 40, 800 })
            foreach (int n in new[] { 1, 5, 17, 33, 70 })
            {
                var b = Random<T>(rng, n * k);
                var packed = new PackedMatrix<T>(context, n, k, b);
                foreach (int m in new[] { 1, 2, 7, 9, 130 })
                    foreach (bool init in new[] { false, true })
                    {
                        var a = Random<T>(rng, m * k);
                        var row = init ? Random<T>(rng, n) : [];
                        var want = new T[m * n];
                        var got = new T[m * n];
                        got.AsSpan().Fill(T.CreateChecked(12345));   // whatever C held before is overwritten
                        for (int i = 0; i < m && init; i++) row.CopyTo(want.AsSpan(i * n));
                        Gemm.Multiply<T>(context, false, true, m, n, k, a, b, want, accumulate: init);
                        packed.Multiply(context, m, a, got, row);
                        for (int i = 0; i < want.Length; i++)
                            Assert.True(want[i] == got[i], $"{typeof(T).Name} {m}×{n}×{k} init={init} {context}: C[{i}] = {got[i]}, Gemm gives {want[i]}");
                    }
            }
    }

    /// <summary>Values in [−1, 1), a fifth of them exact zeros (the zero-skipping paths run too).</summary>
    private static T[] Random<T>(Random rng, int length) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var v = new T[length];
        for (int i = 0; i < length; i++) v[i] = rng.Next(5) == 0 ? T.Zero : T.CreateChecked(rng.NextDouble() * 2 - 1);
        return v;
    }

    [Fact]
    public void RefusesAContextWithOtherKernels()
    {
        using var portable = new ComputeContext(1, null, GemmPath.Portable);
        using var tuned = new ComputeContext(1, KernelTuning.Default with { KcBytes = 1024 }, GemmPath.Portable);
        var packed = new PackedMatrix<float>(portable, 20, 40, new float[800]);
        Assert.Throws<ArgumentException>(() => packed.Multiply(tuned, 1, new float[40], new float[20]));
    }
}
