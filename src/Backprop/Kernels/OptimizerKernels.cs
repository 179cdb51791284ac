using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Backprop.Kernels;

/// <summary>Fused, vectorised parameter updates: one pass over parameter, gradient and state.</summary>
public static class OptimizerKernels
{
    /// <summary>Adam / AdamW: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr·(m/bc₁)/(√(v/bc₂) + ε) − lr·wd·p.</summary>
    public static bool Adam<T>(Span<T> p, ReadOnlySpan<T> g, Span<T> m, Span<T> v,
        T lr, T beta1, T beta2, T eps, T biasCorrection1, T biasCorrection2, T l2, T decoupledDecay)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = p.Length, i = 0;
        // g·0 is 0 for finite g and NaN for ±Inf or NaN: folded into the pass the update makes anyway
        var finite = Vector<T>.AllBitsSet;
        T one = T.One;
        T stepSize = lr / biasCorrection1;
        T invSqrtBc2 = one / T.Sqrt(biasCorrection2);
        T decay = one - lr * decoupledDecay;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var vb1 = new Vector<T>(beta1); var vb2 = new Vector<T>(beta2);
            var v1b1 = new Vector<T>(one - beta1); var v1b2 = new Vector<T>(one - beta2);
            var veps = new Vector<T>(eps); var vstep = new Vector<T>(stepSize); var vinv = new Vector<T>(invSqrtBc2);
            var vdecay = new Vector<T>(decay); var vl2 = new Vector<T>(l2);
            ref T pr = ref MemoryMarshal.GetReference(p);
            ref T gr = ref MemoryMarshal.GetReference(g);
            ref T mr = ref MemoryMarshal.GetReference(m);
            ref T vr = ref MemoryMarshal.GetReference(v);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var pv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref pr, i));
                var graw = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref gr, i));
                finite &= Vector.Equals(graw * Vector<T>.Zero, Vector<T>.Zero);
                var gv = graw + vl2 * pv;
                var mv = vb1 * Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref mr, i)) + v1b1 * gv;
                var vv = vb2 * Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref vr, i)) + v1b2 * gv * gv;
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref mr, i)) = mv;
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref vr, i)) = vv;
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref pr, i)) = pv * vdecay - vstep * mv / (Vector.SquareRoot(vv) * vinv + veps);
            }
        }
        bool allFinite = Vector.AsVectorByte(finite) == Vector<byte>.AllBitsSet;
        for (; i < n; i++)
        {
            allFinite &= T.IsFinite(g[i]);
            T gi = g[i] + l2 * p[i];
            m[i] = beta1 * m[i] + (one - beta1) * gi;
            v[i] = beta2 * v[i] + (one - beta2) * gi * gi;
            p[i] = p[i] * decay - stepSize * m[i] / (T.Sqrt(v[i]) * invSqrtBc2 + eps);
        }
        return allFinite;
    }

    /// <summary>SGD with momentum (PyTorch's form): b ← μb + (g + wd·p); p ← p − lr·(nesterov ? g + μb : b).</summary>
    public static bool Sgd<T>(Span<T> p, ReadOnlySpan<T> g, Span<T> buf, T lr, T momentum, T weightDecay, bool nesterov, bool firstStep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = p.Length, i = 0;
        // g·0 is 0 for finite g and NaN for ±Inf or NaN: folded into the pass the update makes anyway
        var finite = Vector<T>.AllBitsSet;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var vlr = new Vector<T>(lr); var vmu = new Vector<T>(momentum); var vwd = new Vector<T>(weightDecay);
            ref T pr = ref MemoryMarshal.GetReference(p);
            ref T gr = ref MemoryMarshal.GetReference(g);
            ref T br = ref MemoryMarshal.GetReference(buf);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var pv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref pr, i));
                var graw = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref gr, i));
                finite &= Vector.Equals(graw * Vector<T>.Zero, Vector<T>.Zero);
                var gv = graw + vwd * pv;
                var bv = firstStep ? gv : vmu * Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref br, i)) + gv;
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref br, i)) = bv;
                var d = nesterov ? gv + vmu * bv : bv;
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref pr, i)) = pv - vlr * d;
            }
        }
        bool allFinite = Vector.AsVectorByte(finite) == Vector<byte>.AllBitsSet;
        for (; i < n; i++)
        {
            allFinite &= T.IsFinite(g[i]);
            T gi = g[i] + weightDecay * p[i];
            T b = firstStep ? gi : momentum * buf[i] + gi;
            buf[i] = b;
            p[i] -= lr * (nesterov ? gi + momentum * b : b);
        }
        return allFinite;
    }

    /// <summary>RMSprop: s ← αs + (1−α)g²; p ← p − lr·g/(√s + ε).</summary>
    public static bool RmsProp<T>(Span<T> p, ReadOnlySpan<T> g, Span<T> s, T lr, T alpha, T eps, T weightDecay)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = p.Length, i = 0;
        // g·0 is 0 for finite g and NaN for ±Inf or NaN: folded into the pass the update makes anyway
        var finite = Vector<T>.AllBitsSet;
        T one = T.One;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var vlr = new Vector<T>(lr); var va = new Vector<T>(alpha); var v1a = new Vector<T>(one - alpha);
            var veps = new Vector<T>(eps); var vwd = new Vector<T>(weightDecay);
            ref T pr = ref MemoryMarshal.GetReference(p);
            ref T gr = ref MemoryMarshal.GetReference(g);
            ref T sr = ref MemoryMarshal.GetReference(s);
            for (; i <= n - Vector<T>.Count; i += Vector<T>.Count)
            {
                var pv = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref pr, i));
                var graw = Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref gr, i));
                finite &= Vector.Equals(graw * Vector<T>.Zero, Vector<T>.Zero);
                var gv = graw + vwd * pv;
                var sv = va * Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref sr, i)) + v1a * gv * gv;
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref sr, i)) = sv;
                Unsafe.As<T, Vector<T>>(ref Unsafe.Add(ref pr, i)) = pv - vlr * gv / (Vector.SquareRoot(sv) + veps);
            }
        }
        bool allFinite = Vector.AsVectorByte(finite) == Vector<byte>.AllBitsSet;
        for (; i < n; i++)
        {
            allFinite &= T.IsFinite(g[i]);
            T gi = g[i] + weightDecay * p[i];
            s[i] = alpha * s[i] + (one - alpha) * gi * gi;
            p[i] -= lr * gi / (T.Sqrt(s[i]) + eps);
        }
        return allFinite;
    }
}
