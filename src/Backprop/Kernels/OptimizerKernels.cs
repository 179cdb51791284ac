using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Kernels;

/// <summary>The vector width an optimizer pass runs at (tests run each against <see cref="Scalar"/>).</summary>
internal enum UpdateWidth
{
    /// <summary>The widest this CPU accelerates: <see cref="Vector512"/>, else <see cref="Vector"/>.</summary>
    Auto,
    /// <summary><see cref="Vector512{T}"/>: the pass is bound by the divide and square-root units, which Zen 5 and Intel's
    /// AVX-512 cores build full width, so 16 float lanes a divide take half the instructions of 8.</summary>
    Vector512,
    /// <summary><see cref="Vector{T}"/>: 256-bit on x64 (also on AVX-512 machines), 128-bit on Arm.</summary>
    Vector,
    /// <summary>One element at a time: the reference every other width matches bit for bit.</summary>
    Scalar,
}

/// <summary>
/// Fused, vectorised parameter updates: one pass over parameter, gradient and state. Every width performs the same
/// operations in the same order (the JIT never contracts a multiply and an add into an FMA), so each gives the scalar
/// loop's bits, and the split of a tensor between threads cannot change a result.
/// </summary>
public static class OptimizerKernels
{
    internal static UpdateWidth Resolve(UpdateWidth width) => width switch
    {
        UpdateWidth.Auto => Vector512.IsHardwareAccelerated ? UpdateWidth.Vector512 : Vector.IsHardwareAccelerated ? UpdateWidth.Vector : UpdateWidth.Scalar,
        _ => width,
    };

    /// <summary>Adam / AdamW: m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr·(m/bc₁)/(√(v/bc₂) + ε) − lr·wd·p.</summary>
    /// <exception cref="ArgumentException">A span's length is not the parameters'.</exception>
    public static bool Adam<T>(Span<T> p, ReadOnlySpan<T> g, Span<T> m, Span<T> v,
        T lr, T beta1, T beta2, T eps, T biasCorrection1, T biasCorrection2, T l2, T decoupledDecay)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        SameLengths(p.Length, g.Length, m.Length, v.Length);
        return Adam(UpdateWidth.Auto, p, g, m, v, lr, beta1, beta2, eps, biasCorrection1, biasCorrection2, l2, decoupledDecay);
    }

    internal static bool Adam<T>(UpdateWidth width, Span<T> p, ReadOnlySpan<T> g, Span<T> m, Span<T> v,
        T lr, T beta1, T beta2, T eps, T biasCorrection1, T biasCorrection2, T l2, T decoupledDecay)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = p.Length, i = 0;
        bool allFinite = true;
        T one = T.One;
        T stepSize = lr / biasCorrection1;
        T invSqrtBc2 = one / T.Sqrt(biasCorrection2);
        T decay = one - lr * decoupledDecay;
        ref T pr = ref MemoryMarshal.GetReference(p);
        ref T gr = ref MemoryMarshal.GetReference(g);
        ref T mr = ref MemoryMarshal.GetReference(m);
        ref T vr = ref MemoryMarshal.GetReference(v);
        width = Resolve(width);
        // g·0 is 0 for finite g and NaN for ±Inf or NaN: folded into the pass the update makes anyway
        if (width == UpdateWidth.Vector512 && n >= Vector512<T>.Count)
        {
            var finite = Vector512<T>.AllBitsSet;
            var vb1 = Vector512.Create(beta1); var vb2 = Vector512.Create(beta2);
            var v1b1 = Vector512.Create(one - beta1); var v1b2 = Vector512.Create(one - beta2);
            var veps = Vector512.Create(eps); var vstep = Vector512.Create(stepSize); var vinv = Vector512.Create(invSqrtBc2);
            var vdecay = Vector512.Create(decay); var vl2 = Vector512.Create(l2);
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
            {
                nuint at = (nuint)i;
                var pv = Vector512.LoadUnsafe(ref pr, at);
                var graw = Vector512.LoadUnsafe(ref gr, at);
                finite &= Vector512.Equals(graw * Vector512<T>.Zero, Vector512<T>.Zero);
                var gv = graw + vl2 * pv;
                var mv = vb1 * Vector512.LoadUnsafe(ref mr, at) + v1b1 * gv;
                var vv = vb2 * Vector512.LoadUnsafe(ref vr, at) + v1b2 * gv * gv;
                mv.StoreUnsafe(ref mr, at);
                vv.StoreUnsafe(ref vr, at);
                (pv * vdecay - vstep * mv / (Vector512.Sqrt(vv) * vinv + veps)).StoreUnsafe(ref pr, at);
            }
            allFinite &= finite.AsByte() == Vector512<byte>.AllBitsSet;
        }
        // also the Vector512 pass's tail: a 10-element bias still runs a vector
        if (width != UpdateWidth.Scalar && Vector.IsHardwareAccelerated && n - i >= Vector<T>.Count)
        {
            var finite = Vector<T>.AllBitsSet;
            var vb1 = new Vector<T>(beta1); var vb2 = new Vector<T>(beta2);
            var v1b1 = new Vector<T>(one - beta1); var v1b2 = new Vector<T>(one - beta2);
            var veps = new Vector<T>(eps); var vstep = new Vector<T>(stepSize); var vinv = new Vector<T>(invSqrtBc2);
            var vdecay = new Vector<T>(decay); var vl2 = new Vector<T>(l2);
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
            allFinite &= Vector.AsVectorByte(finite) == Vector<byte>.AllBitsSet;
        }
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
    /// <exception cref="ArgumentException">A span's length is not the parameters'.</exception>
    public static bool Sgd<T>(Span<T> p, ReadOnlySpan<T> g, Span<T> buf, T lr, T momentum, T weightDecay, bool nesterov, bool firstStep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        SameLengths(p.Length, g.Length, buf.Length, p.Length);
        return Sgd(UpdateWidth.Auto, p, g, buf, lr, momentum, weightDecay, nesterov, firstStep);
    }

    internal static bool Sgd<T>(UpdateWidth width, Span<T> p, ReadOnlySpan<T> g, Span<T> buf, T lr, T momentum, T weightDecay, bool nesterov, bool firstStep)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = p.Length, i = 0;
        bool allFinite = true;
        ref T pr = ref MemoryMarshal.GetReference(p);
        ref T gr = ref MemoryMarshal.GetReference(g);
        ref T br = ref MemoryMarshal.GetReference(buf);
        width = Resolve(width);
        // g·0 is 0 for finite g and NaN for ±Inf or NaN: folded into the pass the update makes anyway
        if (width == UpdateWidth.Vector512 && n >= Vector512<T>.Count)
        {
            var finite = Vector512<T>.AllBitsSet;
            var vlr = Vector512.Create(lr); var vmu = Vector512.Create(momentum); var vwd = Vector512.Create(weightDecay);
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
            {
                nuint at = (nuint)i;
                var pv = Vector512.LoadUnsafe(ref pr, at);
                var graw = Vector512.LoadUnsafe(ref gr, at);
                finite &= Vector512.Equals(graw * Vector512<T>.Zero, Vector512<T>.Zero);
                var gv = graw + vwd * pv;
                var bv = firstStep ? gv : vmu * Vector512.LoadUnsafe(ref br, at) + gv;
                bv.StoreUnsafe(ref br, at);
                var d = nesterov ? gv + vmu * bv : bv;
                (pv - vlr * d).StoreUnsafe(ref pr, at);
            }
            allFinite &= finite.AsByte() == Vector512<byte>.AllBitsSet;
        }
        // also the Vector512 pass's tail: a 10-element bias still runs a vector
        if (width != UpdateWidth.Scalar && Vector.IsHardwareAccelerated && n - i >= Vector<T>.Count)
        {
            var finite = Vector<T>.AllBitsSet;
            var vlr = new Vector<T>(lr); var vmu = new Vector<T>(momentum); var vwd = new Vector<T>(weightDecay);
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
            allFinite &= Vector.AsVectorByte(finite) == Vector<byte>.AllBitsSet;
        }
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
    /// <exception cref="ArgumentException">A span's length is not the parameters'.</exception>
    public static bool RmsProp<T>(Span<T> p, ReadOnlySpan<T> g, Span<T> s, T lr, T alpha, T eps, T weightDecay)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        SameLengths(p.Length, g.Length, s.Length, p.Length);
        return RmsProp(UpdateWidth.Auto, p, g, s, lr, alpha, eps, weightDecay);
    }

    // The passes read and write every span over p's length without bounds checks: a shorter one is refused here.
    private static void SameLengths(int p, int g, int state1, int state2)
    {
        if (g != p || state1 != p || state2 != p)
            throw new ArgumentException($"the gradient and the optimizer state must have the parameters' length {p} (got {g}, {state1}, {state2})");
    }

    internal static bool RmsProp<T>(UpdateWidth width, Span<T> p, ReadOnlySpan<T> g, Span<T> s, T lr, T alpha, T eps, T weightDecay)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = p.Length, i = 0;
        bool allFinite = true;
        T one = T.One;
        ref T pr = ref MemoryMarshal.GetReference(p);
        ref T gr = ref MemoryMarshal.GetReference(g);
        ref T sr = ref MemoryMarshal.GetReference(s);
        width = Resolve(width);
        // g·0 is 0 for finite g and NaN for ±Inf or NaN: folded into the pass the update makes anyway
        if (width == UpdateWidth.Vector512 && n >= Vector512<T>.Count)
        {
            var finite = Vector512<T>.AllBitsSet;
            var vlr = Vector512.Create(lr); var va = Vector512.Create(alpha); var v1a = Vector512.Create(one - alpha);
            var veps = Vector512.Create(eps); var vwd = Vector512.Create(weightDecay);
            for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
            {
                nuint at = (nuint)i;
                var pv = Vector512.LoadUnsafe(ref pr, at);
                var graw = Vector512.LoadUnsafe(ref gr, at);
                finite &= Vector512.Equals(graw * Vector512<T>.Zero, Vector512<T>.Zero);
                var gv = graw + vwd * pv;
                var sv = va * Vector512.LoadUnsafe(ref sr, at) + v1a * gv * gv;
                sv.StoreUnsafe(ref sr, at);
                (pv - vlr * gv / (Vector512.Sqrt(sv) + veps)).StoreUnsafe(ref pr, at);
            }
            allFinite &= finite.AsByte() == Vector512<byte>.AllBitsSet;
        }
        // also the Vector512 pass's tail: a 10-element bias still runs a vector
        if (width != UpdateWidth.Scalar && Vector.IsHardwareAccelerated && n - i >= Vector<T>.Count)
        {
            var finite = Vector<T>.AllBitsSet;
            var vlr = new Vector<T>(lr); var va = new Vector<T>(alpha); var v1a = new Vector<T>(one - alpha);
            var veps = new Vector<T>(eps); var vwd = new Vector<T>(weightDecay);
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
            allFinite &= Vector.AsVectorByte(finite) == Vector<byte>.AllBitsSet;
        }
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
