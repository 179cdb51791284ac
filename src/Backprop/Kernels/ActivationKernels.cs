using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Backprop.Kernels;

/// <summary>Vectorised activation derivatives: dz = dy ⊙ f′, one pass over memory.</summary>
public static class ActivationKernels
{
    /// <summary>y = max(z, 0).</summary>
    public static void ReluForward<T>(ReadOnlySpan<T> z, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = z.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ref T zr = ref MemoryMarshal.GetReference(z);
            ref T yr = ref MemoryMarshal.GetReference(y);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var zv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref zr, i));
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref yr, i)) = Vector.ConditionalSelect(Vector.GreaterThan(zv, Vector<T>.Zero), zv, Vector<T>.Zero);
            }
        }
        for (; i < n; i++) y[i] = z[i] > T.Zero ? z[i] : T.Zero;
    }

    /// <summary>dz = dy where z &gt; 0, else slope·dy (relu: slope 0).</summary>
    public static void ReluBackward<T>(ReadOnlySpan<T> z, ReadOnlySpan<T> dy, Span<T> dz, T slope) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = z.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ref T zr = ref MemoryMarshal.GetReference(z);
            ref T gr = ref MemoryMarshal.GetReference(dy);
            ref T dr = ref MemoryMarshal.GetReference(dz);
            var vs = new Vector<T>(slope);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var zv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref zr, i));
                var gv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref gr, i));
                // relu (slope 0) selects 0 rather than 0·dy, which would turn an infinite dy into NaN
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref dr, i)) =
                    Vector.ConditionalSelect(Vector.GreaterThan(zv, Vector<T>.Zero), gv, slope == T.Zero ? Vector<T>.Zero : gv * vs);
            }
        }
        for (; i < n; i++) dz[i] = z[i] > T.Zero ? dy[i] : slope == T.Zero ? T.Zero : dy[i] * slope;
    }

    /// <summary>dz = dy ⊙ y ⊙ (1 − y), the sigmoid derivative from its output.</summary>
    public static void SigmoidBackward<T>(ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = y.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ref T yr = ref MemoryMarshal.GetReference(y);
            ref T gr = ref MemoryMarshal.GetReference(dy);
            ref T dr = ref MemoryMarshal.GetReference(dz);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var yv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref yr, i));
                var gv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref gr, i));
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref dr, i)) = gv * yv * (Vector<T>.One - yv);
            }
        }
        for (; i < n; i++) dz[i] = dy[i] * y[i] * (T.One - y[i]);
    }

    /// <summary>dz = dy ⊙ (1 − y²), the tanh derivative from its output.</summary>
    public static void TanhBackward<T>(ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = y.Length, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ref T yr = ref MemoryMarshal.GetReference(y);
            ref T gr = ref MemoryMarshal.GetReference(dy);
            ref T dr = ref MemoryMarshal.GetReference(dz);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var yv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref yr, i));
                var gv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref gr, i));
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref dr, i)) = gv * (Vector<T>.One - yv * yv);
            }
        }
        for (; i < n; i++) dz[i] = dy[i] * (T.One - y[i] * y[i]);
    }
}
