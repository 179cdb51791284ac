using System.Numerics;
using System.Runtime.CompilerServices;

namespace Backprop.Kernels;

/// <summary>Transposing gathers used by the packing routines.</summary>
internal static unsafe class GemmPack
{
    /// <summary>dst[p*width + r] = src[r*ld + p] for r &lt; rows, p &lt; kc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose<T>(T* src, nint ld, int rows, int kc, T* dst, int width) where T : unmanaged
    {
        int r = 0;
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
}
