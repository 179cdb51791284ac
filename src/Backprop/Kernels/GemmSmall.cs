using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Backprop.Kernels;

/// <summary>Direct (unpacked) kernels for shapes where packing does not pay.</summary>
internal static unsafe class GemmSmall
{
    /// <summary>
    /// Rows of A that <see cref="DotNT"/> takes at a time, summing each dot product in one vector accumulator; the rows
    /// after the last whole group (m mod this) run one by one in <see cref="Dot"/>, which sums in two, so a row's bits
    /// depend on its position in A relative to the product's end.
    /// </summary>
    internal const int DotRowGroup = 4;

    /// <summary>
    /// C = A·Bᵀ (A stored m×k, B stored n×k) as dot products along k, both operands read in place:
    /// the narrow-output case (e.g. the 10-class layer's X·Wᵀ) where a 32-wide register tile would be mostly padding.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotNT<T>(int m, int n, int k, T* a, nint lda, T* b, nint ldb, T* c, nint ldc, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int V = Vector256<T>.Count;
        int kv = k - k % V;
        int i = 0;
        for (; i + DotRowGroup <= m; i += DotRowGroup)   // the four rows below
        {
            T* a0 = a + i * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
            int j = 0;
            for (; j + 2 <= n; j += 2)
            {
                T* b0 = b + j * ldb, b1 = b0 + ldb;
                Vector256<T> c00 = default, c01 = default, c10 = default, c11 = default,
                    c20 = default, c21 = default, c30 = default, c31 = default;
                for (int p = 0; p < kv; p += V)
                {
                    var vb0 = Vector256.Load(b0 + p);
                    var vb1 = Vector256.Load(b1 + p);
                    var va = Vector256.Load(a0 + p); c00 = MulAdd(va, vb0, c00); c01 = MulAdd(va, vb1, c01);
                    va = Vector256.Load(a1 + p); c10 = MulAdd(va, vb0, c10); c11 = MulAdd(va, vb1, c11);
                    va = Vector256.Load(a2 + p); c20 = MulAdd(va, vb0, c20); c21 = MulAdd(va, vb1, c21);
                    va = Vector256.Load(a3 + p); c30 = MulAdd(va, vb0, c30); c31 = MulAdd(va, vb1, c31);
                }
                T s00 = Vector256.Sum(c00), s01 = Vector256.Sum(c01), s10 = Vector256.Sum(c10), s11 = Vector256.Sum(c11);
                T s20 = Vector256.Sum(c20), s21 = Vector256.Sum(c21), s30 = Vector256.Sum(c30), s31 = Vector256.Sum(c31);
                for (int p = kv; p < k; p++)
                {
                    T x0 = b0[p], x1 = b1[p];
                    s00 += a0[p] * x0; s01 += a0[p] * x1;
                    s10 += a1[p] * x0; s11 += a1[p] * x1;
                    s20 += a2[p] * x0; s21 += a2[p] * x1;
                    s30 += a3[p] * x0; s31 += a3[p] * x1;
                }
                Put(c + i * ldc + j, s00, accumulate); Put(c + i * ldc + j + 1, s01, accumulate);
                Put(c + (i + 1) * ldc + j, s10, accumulate); Put(c + (i + 1) * ldc + j + 1, s11, accumulate);
                Put(c + (i + 2) * ldc + j, s20, accumulate); Put(c + (i + 2) * ldc + j + 1, s21, accumulate);
                Put(c + (i + 3) * ldc + j, s30, accumulate); Put(c + (i + 3) * ldc + j + 1, s31, accumulate);
            }
            for (; j < n; j++)
            {
                T* bj = b + j * ldb;
                for (int r = 0; r < 4; r++) Put(c + (i + r) * ldc + j, Dot(a0 + r * lda, bj, k), accumulate);
            }
        }
        for (; i < m; i++)
            for (int j = 0; j < n; j++)
                Put(c + i * ldc + j, Dot(a + i * lda, b + j * ldb, k), accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put<T>(T* c, T s, bool accumulate) where T : unmanaged, IFloatingPointIeee754<T>
        => *c = accumulate ? *c + s : s;

    private static T Dot<T>(T* x, T* y, int k) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int V = Vector256<T>.Count;
        Vector256<T> acc0 = default, acc1 = default;
        int p = 0;
        for (; p + 2 * V <= k; p += 2 * V)
        {
            acc0 = MulAdd(Vector256.Load(x + p), Vector256.Load(y + p), acc0);
            acc1 = MulAdd(Vector256.Load(x + p + V), Vector256.Load(y + p + V), acc1);
        }
        T s = Vector256.Sum(acc0 + acc1);
        for (; p < k; p++) s += x[p] * y[p];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> MulAdd<T>(Vector256<T> x, Vector256<T> y, Vector256<T> acc)
    {
        if (typeof(T) == typeof(float))
            return Vector256.MultiplyAddEstimate(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double))
            return Vector256.MultiplyAddEstimate(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
        return x * y + acc;
    }
}
