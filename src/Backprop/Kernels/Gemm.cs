using System.Numerics;

namespace Backprop.Kernels;

/// <summary>
/// General matrix product on row-major, contiguous operands:
/// C[m×n] = op(A)·op(B) (or C += … when <c>accumulate</c>), where op(A) is m×k and op(B) is k×n.
/// With <c>transA</c>, A is stored k×m; with <c>transB</c>, B is stored n×k. No transpose is ever materialised.
/// This kernel knows nothing about graphs or autodiff.
/// </summary>
public static class Gemm
{
    public static void Multiply<T>(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), "dimensions must be non-negative");
        if (a.Length < m * k) throw new ArgumentException($"A holds {a.Length} values, needs {m}×{k}");
        if (b.Length < k * n) throw new ArgumentException($"B holds {b.Length} values, needs {k}×{n}");
        if (c.Length < m * n) throw new ArgumentException($"C holds {c.Length} values, needs {m}×{n}");
        Reference(transA, transB, m, n, k, a, b, c, accumulate);
    }

    /// <summary>The plain triple loop: the specification the fast paths are tested against.</summary>
    public static void Reference<T>(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                T s = T.Zero;
                for (int p = 0; p < k; p++)
                {
                    T av = transA ? a[p * m + i] : a[i * k + p];
                    T bv = transB ? b[j * k + p] : b[p * n + j];
                    s += av * bv;
                }
                c[i * n + j] = accumulate ? c[i * n + j] + s : s;
            }
        }
    }
}

/// <summary>The number of worker threads the kernels may use (default: all cores).</summary>
public static class KernelThreads
{
    private static int _count = Environment.ProcessorCount;

    public static int Count
    {
        get => _count;
        set => _count = value <= 0 ? Environment.ProcessorCount : value;
    }
}
