using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Backprop.Kernels;

/// <summary>Transposing gathers used by the packing routines (A·Bᵀ's B panels, A·B's A panels).</summary>
internal static unsafe class GemmPack
{
    /// <summary>dst[p*width + r] = src[r*ld + p] for r &lt; rows, p &lt; kc.</summary>
    /// <remarks>With AVX and <paramref name="vectorized"/>, 8×8 float / 4×4 double blocks are transposed in registers.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose<T>(T* src, nint ld, int rows, int kc, T* dst, int width, bool vectorized) where T : unmanaged
    {
        int r = 0;
        if (Avx.IsSupported && vectorized)
        {
            if (typeof(T) == typeof(float))
            {
                for (; r + 8 <= rows; r += 8)
                    Transpose8Rows((float*)src + r * ld, ld, kc, (float*)dst + r, width);
            }
            else if (typeof(T) == typeof(double))
            {
                for (; r + 4 <= rows; r += 4)
                    Transpose4Rows((double*)src + r * ld, ld, kc, (double*)dst + r, width);
            }
        }
        for (; r + 4 <= rows; r += 4)
        {
            T* s0 = src + r * ld, s1 = s0 + ld, s2 = s1 + ld, s3 = s2 + ld;
            T* d = dst + r;
            for (int p = 0; p < kc; p++, d += width)
            {
                d[0] = s0[p]; d[1] = s1[p]; d[2] = s2[p]; d[3] = s3[p];
            }
        }
        for (; r < rows; r++)
        {
            T* s = src + r * ld;
            T* d = dst + r;
            for (int p = 0; p < kc; p++, d += width) *d = s[p];
        }
    }

    /// <summary>8 source rows: dst[p*width + 0..7] = column p of the rows.</summary>
    private static void Transpose8Rows(float* s, nint ld, int kc, float* d, int width)
    {
        float* s0 = s, s1 = s + ld, s2 = s + 2 * ld, s3 = s + 3 * ld, s4 = s + 4 * ld, s5 = s + 5 * ld, s6 = s + 6 * ld, s7 = s + 7 * ld;
        int p = 0;
        for (; p + 8 <= kc; p += 8)
        {
            var r0 = Avx.LoadVector256(s0 + p); var r1 = Avx.LoadVector256(s1 + p);
            var r2 = Avx.LoadVector256(s2 + p); var r3 = Avx.LoadVector256(s3 + p);
            var r4 = Avx.LoadVector256(s4 + p); var r5 = Avx.LoadVector256(s5 + p);
            var r6 = Avx.LoadVector256(s6 + p); var r7 = Avx.LoadVector256(s7 + p);
            var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
            var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
            var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
            var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
            var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
            var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
            var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
            var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
            float* o = d + p * width;
            Avx.Store(o, Avx.Permute2x128(u0, u4, 0x20));
            Avx.Store(o + width, Avx.Permute2x128(u1, u5, 0x20));
            Avx.Store(o + 2 * width, Avx.Permute2x128(u2, u6, 0x20));
            Avx.Store(o + 3 * width, Avx.Permute2x128(u3, u7, 0x20));
            Avx.Store(o + 4 * width, Avx.Permute2x128(u0, u4, 0x31));
            Avx.Store(o + 5 * width, Avx.Permute2x128(u1, u5, 0x31));
            Avx.Store(o + 6 * width, Avx.Permute2x128(u2, u6, 0x31));
            Avx.Store(o + 7 * width, Avx.Permute2x128(u3, u7, 0x31));
        }
        for (; p < kc; p++)
        {
            float* o = d + p * width;
            o[0] = s0[p]; o[1] = s1[p]; o[2] = s2[p]; o[3] = s3[p];
            o[4] = s4[p]; o[5] = s5[p]; o[6] = s6[p]; o[7] = s7[p];
        }
    }

    /// <summary>4 source rows: dst[p*width + 0..3] = column p of the rows.</summary>
    private static void Transpose4Rows(double* s, nint ld, int kc, double* d, int width)
    {
        double* s0 = s, s1 = s + ld, s2 = s + 2 * ld, s3 = s + 3 * ld;
        int p = 0;
        for (; p + 4 <= kc; p += 4)
        {
            var r0 = Avx.LoadVector256(s0 + p); var r1 = Avx.LoadVector256(s1 + p);
            var r2 = Avx.LoadVector256(s2 + p); var r3 = Avx.LoadVector256(s3 + p);
            var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
            var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
            double* o = d + p * width;
            Avx.Store(o, Avx.Permute2x128(t0, t2, 0x20));
            Avx.Store(o + width, Avx.Permute2x128(t1, t3, 0x20));
            Avx.Store(o + 2 * width, Avx.Permute2x128(t0, t2, 0x31));
            Avx.Store(o + 3 * width, Avx.Permute2x128(t1, t3, 0x31));
        }
        for (; p < kc; p++)
        {
            double* o = d + p * width;
            o[0] = s0[p]; o[1] = s1[p]; o[2] = s2[p]; o[3] = s3[p];
        }
    }
}
