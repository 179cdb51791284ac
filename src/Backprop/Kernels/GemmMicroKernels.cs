// Register-tiled GEMM micro-kernels, fully unrolled over the tile (one named local per accumulator so the JIT keeps
// all of them in registers: 24 zmm for AVX-512). Mechanically generated from one pattern; keep the three in step.
#nullable enable
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Backprop.Kernels;

/// <summary>AVX-512 micro-kernel: 12 rows × 2 zmm (12×32 float, 12×16 double), 24 accumulators.</summary>
internal readonly unsafe struct Avx512Kernel<T> : IMicroKernel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static int MR => 12;
    public static int NR => 2 * Vector512<T>.Count;
    public static bool IsSupported => Avx512F.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> MulAdd(Vector512<T> x, Vector512<T> y, Vector512<T> acc)
    {
        if (typeof(T) == typeof(float))
            return Vector512.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
        return Vector512.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, T* a, T* b, nint bs, T* c, nint ldc, bool load)
    {
        Vector512<T> c0_0 = default; Vector512<T> c0_1 = default;
        Vector512<T> c1_0 = default; Vector512<T> c1_1 = default;
        Vector512<T> c2_0 = default; Vector512<T> c2_1 = default;
        Vector512<T> c3_0 = default; Vector512<T> c3_1 = default;
        Vector512<T> c4_0 = default; Vector512<T> c4_1 = default;
        Vector512<T> c5_0 = default; Vector512<T> c5_1 = default;
        Vector512<T> c6_0 = default; Vector512<T> c6_1 = default;
        Vector512<T> c7_0 = default; Vector512<T> c7_1 = default;
        Vector512<T> c8_0 = default; Vector512<T> c8_1 = default;
        Vector512<T> c9_0 = default; Vector512<T> c9_1 = default;
        Vector512<T> c10_0 = default; Vector512<T> c10_1 = default;
        Vector512<T> c11_0 = default; Vector512<T> c11_1 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector512<T> b0 = Vector512.Load(b);
            Vector512<T> b1 = Vector512.Load(b + 1 * Vector512<T>.Count);
            Vector512<T> a0 = Vector512.Create(a[0]);
            c0_0 = MulAdd(a0, b0, c0_0);
            c0_1 = MulAdd(a0, b1, c0_1);
            Vector512<T> a1 = Vector512.Create(a[1]);
            c1_0 = MulAdd(a1, b0, c1_0);
            c1_1 = MulAdd(a1, b1, c1_1);
            Vector512<T> a2 = Vector512.Create(a[2]);
            c2_0 = MulAdd(a2, b0, c2_0);
            c2_1 = MulAdd(a2, b1, c2_1);
            Vector512<T> a3 = Vector512.Create(a[3]);
            c3_0 = MulAdd(a3, b0, c3_0);
            c3_1 = MulAdd(a3, b1, c3_1);
            Vector512<T> a4 = Vector512.Create(a[4]);
            c4_0 = MulAdd(a4, b0, c4_0);
            c4_1 = MulAdd(a4, b1, c4_1);
            Vector512<T> a5 = Vector512.Create(a[5]);
            c5_0 = MulAdd(a5, b0, c5_0);
            c5_1 = MulAdd(a5, b1, c5_1);
            Vector512<T> a6 = Vector512.Create(a[6]);
            c6_0 = MulAdd(a6, b0, c6_0);
            c6_1 = MulAdd(a6, b1, c6_1);
            Vector512<T> a7 = Vector512.Create(a[7]);
            c7_0 = MulAdd(a7, b0, c7_0);
            c7_1 = MulAdd(a7, b1, c7_1);
            Vector512<T> a8 = Vector512.Create(a[8]);
            c8_0 = MulAdd(a8, b0, c8_0);
            c8_1 = MulAdd(a8, b1, c8_1);
            Vector512<T> a9 = Vector512.Create(a[9]);
            c9_0 = MulAdd(a9, b0, c9_0);
            c9_1 = MulAdd(a9, b1, c9_1);
            Vector512<T> a10 = Vector512.Create(a[10]);
            c10_0 = MulAdd(a10, b0, c10_0);
            c10_1 = MulAdd(a10, b1, c10_1);
            Vector512<T> a11 = Vector512.Create(a[11]);
            c11_0 = MulAdd(a11, b0, c11_0);
            c11_1 = MulAdd(a11, b1, c11_1);
            a += 12;
            b += bs;
        }
        if (load)
        {
            c0_0 += Vector512.Load(c);
            c0_1 += Vector512.Load(c + 1 * Vector512<T>.Count);
            c1_0 += Vector512.Load(c + 1 * ldc);
            c1_1 += Vector512.Load(c + 1 * ldc + 1 * Vector512<T>.Count);
            c2_0 += Vector512.Load(c + 2 * ldc);
            c2_1 += Vector512.Load(c + 2 * ldc + 1 * Vector512<T>.Count);
            c3_0 += Vector512.Load(c + 3 * ldc);
            c3_1 += Vector512.Load(c + 3 * ldc + 1 * Vector512<T>.Count);
            c4_0 += Vector512.Load(c + 4 * ldc);
            c4_1 += Vector512.Load(c + 4 * ldc + 1 * Vector512<T>.Count);
            c5_0 += Vector512.Load(c + 5 * ldc);
            c5_1 += Vector512.Load(c + 5 * ldc + 1 * Vector512<T>.Count);
            c6_0 += Vector512.Load(c + 6 * ldc);
            c6_1 += Vector512.Load(c + 6 * ldc + 1 * Vector512<T>.Count);
            c7_0 += Vector512.Load(c + 7 * ldc);
            c7_1 += Vector512.Load(c + 7 * ldc + 1 * Vector512<T>.Count);
            c8_0 += Vector512.Load(c + 8 * ldc);
            c8_1 += Vector512.Load(c + 8 * ldc + 1 * Vector512<T>.Count);
            c9_0 += Vector512.Load(c + 9 * ldc);
            c9_1 += Vector512.Load(c + 9 * ldc + 1 * Vector512<T>.Count);
            c10_0 += Vector512.Load(c + 10 * ldc);
            c10_1 += Vector512.Load(c + 10 * ldc + 1 * Vector512<T>.Count);
            c11_0 += Vector512.Load(c + 11 * ldc);
            c11_1 += Vector512.Load(c + 11 * ldc + 1 * Vector512<T>.Count);
        }
        c0_0.Store(c);
        c0_1.Store(c + 1 * Vector512<T>.Count);
        c1_0.Store(c + 1 * ldc);
        c1_1.Store(c + 1 * ldc + 1 * Vector512<T>.Count);
        c2_0.Store(c + 2 * ldc);
        c2_1.Store(c + 2 * ldc + 1 * Vector512<T>.Count);
        c3_0.Store(c + 3 * ldc);
        c3_1.Store(c + 3 * ldc + 1 * Vector512<T>.Count);
        c4_0.Store(c + 4 * ldc);
        c4_1.Store(c + 4 * ldc + 1 * Vector512<T>.Count);
        c5_0.Store(c + 5 * ldc);
        c5_1.Store(c + 5 * ldc + 1 * Vector512<T>.Count);
        c6_0.Store(c + 6 * ldc);
        c6_1.Store(c + 6 * ldc + 1 * Vector512<T>.Count);
        c7_0.Store(c + 7 * ldc);
        c7_1.Store(c + 7 * ldc + 1 * Vector512<T>.Count);
        c8_0.Store(c + 8 * ldc);
        c8_1.Store(c + 8 * ldc + 1 * Vector512<T>.Count);
        c9_0.Store(c + 9 * ldc);
        c9_1.Store(c + 9 * ldc + 1 * Vector512<T>.Count);
        c10_0.Store(c + 10 * ldc);
        c10_1.Store(c + 10 * ldc + 1 * Vector512<T>.Count);
        c11_0.Store(c + 11 * ldc);
        c11_1.Store(c + 11 * ldc + 1 * Vector512<T>.Count);
    }
}

/// <summary>AVX2/FMA micro-kernel: 6 rows × 2 ymm (6×16 float, 6×8 double), 12 accumulators.</summary>
internal readonly unsafe struct Avx2Kernel<T> : IMicroKernel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static int MR => 6;
    public static int NR => 2 * Vector256<T>.Count;
    public static bool IsSupported => System.Runtime.Intrinsics.X86.Fma.IsSupported && Avx2.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> MulAdd(Vector256<T> x, Vector256<T> y, Vector256<T> acc)
    {
        if (typeof(T) == typeof(float))
            return Vector256.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
        return Vector256.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, T* a, T* b, nint bs, T* c, nint ldc, bool load)
    {
        Vector256<T> c0_0 = default; Vector256<T> c0_1 = default;
        Vector256<T> c1_0 = default; Vector256<T> c1_1 = default;
        Vector256<T> c2_0 = default; Vector256<T> c2_1 = default;
        Vector256<T> c3_0 = default; Vector256<T> c3_1 = default;
        Vector256<T> c4_0 = default; Vector256<T> c4_1 = default;
        Vector256<T> c5_0 = default; Vector256<T> c5_1 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector256<T> b0 = Vector256.Load(b);
            Vector256<T> b1 = Vector256.Load(b + 1 * Vector256<T>.Count);
            Vector256<T> a0 = Vector256.Create(a[0]);
            c0_0 = MulAdd(a0, b0, c0_0);
            c0_1 = MulAdd(a0, b1, c0_1);
            Vector256<T> a1 = Vector256.Create(a[1]);
            c1_0 = MulAdd(a1, b0, c1_0);
            c1_1 = MulAdd(a1, b1, c1_1);
            Vector256<T> a2 = Vector256.Create(a[2]);
            c2_0 = MulAdd(a2, b0, c2_0);
            c2_1 = MulAdd(a2, b1, c2_1);
            Vector256<T> a3 = Vector256.Create(a[3]);
            c3_0 = MulAdd(a3, b0, c3_0);
            c3_1 = MulAdd(a3, b1, c3_1);
            Vector256<T> a4 = Vector256.Create(a[4]);
            c4_0 = MulAdd(a4, b0, c4_0);
            c4_1 = MulAdd(a4, b1, c4_1);
            Vector256<T> a5 = Vector256.Create(a[5]);
            c5_0 = MulAdd(a5, b0, c5_0);
            c5_1 = MulAdd(a5, b1, c5_1);
            a += 6;
            b += bs;
        }
        if (load)
        {
            c0_0 += Vector256.Load(c);
            c0_1 += Vector256.Load(c + 1 * Vector256<T>.Count);
            c1_0 += Vector256.Load(c + 1 * ldc);
            c1_1 += Vector256.Load(c + 1 * ldc + 1 * Vector256<T>.Count);
            c2_0 += Vector256.Load(c + 2 * ldc);
            c2_1 += Vector256.Load(c + 2 * ldc + 1 * Vector256<T>.Count);
            c3_0 += Vector256.Load(c + 3 * ldc);
            c3_1 += Vector256.Load(c + 3 * ldc + 1 * Vector256<T>.Count);
            c4_0 += Vector256.Load(c + 4 * ldc);
            c4_1 += Vector256.Load(c + 4 * ldc + 1 * Vector256<T>.Count);
            c5_0 += Vector256.Load(c + 5 * ldc);
            c5_1 += Vector256.Load(c + 5 * ldc + 1 * Vector256<T>.Count);
        }
        c0_0.Store(c);
        c0_1.Store(c + 1 * Vector256<T>.Count);
        c1_0.Store(c + 1 * ldc);
        c1_1.Store(c + 1 * ldc + 1 * Vector256<T>.Count);
        c2_0.Store(c + 2 * ldc);
        c2_1.Store(c + 2 * ldc + 1 * Vector256<T>.Count);
        c3_0.Store(c + 3 * ldc);
        c3_1.Store(c + 3 * ldc + 1 * Vector256<T>.Count);
        c4_0.Store(c + 4 * ldc);
        c4_1.Store(c + 4 * ldc + 1 * Vector256<T>.Count);
        c5_0.Store(c + 5 * ldc);
        c5_1.Store(c + 5 * ldc + 1 * Vector256<T>.Count);
    }
}

/// <summary>Portable micro-kernel on Vector&lt;T&gt;: 4 rows × 2 vectors, 8 accumulators (any hardware).</summary>
internal readonly unsafe struct PortableKernel<T> : IMicroKernel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static int MR => 4;
    public static int NR => 2 * Vector<T>.Count;
    public static bool IsSupported => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<T> MulAdd(Vector<T> x, Vector<T> y, Vector<T> acc)
    {
        if (typeof(T) == typeof(float))
            return Vector.MultiplyAddEstimate(x.As<T, float>(), y.As<T, float>(), acc.As<T, float>()).As<float, T>();
        return Vector.MultiplyAddEstimate(x.As<T, double>(), y.As<T, double>(), acc.As<T, double>()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, T* a, T* b, nint bs, T* c, nint ldc, bool load)
    {
        Vector<T> c0_0 = default; Vector<T> c0_1 = default;
        Vector<T> c1_0 = default; Vector<T> c1_1 = default;
        Vector<T> c2_0 = default; Vector<T> c2_1 = default;
        Vector<T> c3_0 = default; Vector<T> c3_1 = default;
        for (int p = 0; p < kc; p++)
        {
            Vector<T> b0 = Vector.Load(b);
            Vector<T> b1 = Vector.Load(b + 1 * Vector<T>.Count);
            Vector<T> a0 = Vector.Create(a[0]);
            c0_0 = MulAdd(a0, b0, c0_0);
            c0_1 = MulAdd(a0, b1, c0_1);
            Vector<T> a1 = Vector.Create(a[1]);
            c1_0 = MulAdd(a1, b0, c1_0);
            c1_1 = MulAdd(a1, b1, c1_1);
            Vector<T> a2 = Vector.Create(a[2]);
            c2_0 = MulAdd(a2, b0, c2_0);
            c2_1 = MulAdd(a2, b1, c2_1);
            Vector<T> a3 = Vector.Create(a[3]);
            c3_0 = MulAdd(a3, b0, c3_0);
            c3_1 = MulAdd(a3, b1, c3_1);
            a += 4;
            b += bs;
        }
        if (load)
        {
            c0_0 += Vector.Load(c);
            c0_1 += Vector.Load(c + 1 * Vector<T>.Count);
            c1_0 += Vector.Load(c + 1 * ldc);
            c1_1 += Vector.Load(c + 1 * ldc + 1 * Vector<T>.Count);
            c2_0 += Vector.Load(c + 2 * ldc);
            c2_1 += Vector.Load(c + 2 * ldc + 1 * Vector<T>.Count);
            c3_0 += Vector.Load(c + 3 * ldc);
            c3_1 += Vector.Load(c + 3 * ldc + 1 * Vector<T>.Count);
        }
        c0_0.Store(c);
        c0_1.Store(c + 1 * Vector<T>.Count);
        c1_0.Store(c + 1 * ldc);
        c1_1.Store(c + 1 * ldc + 1 * Vector<T>.Count);
        c2_0.Store(c + 2 * ldc);
        c2_1.Store(c + 2 * ldc + 1 * Vector<T>.Count);
        c3_0.Store(c + 3 * ldc);
        c3_1.Store(c + 3 * ldc + 1 * Vector<T>.Count);
    }
}

