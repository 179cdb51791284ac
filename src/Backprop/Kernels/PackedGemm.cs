using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Backprop.Kernels;

/// <summary>
/// A fixed right operand of C = A·Bᵀ (B stored n×k, as a weight out × in is), packed once into the micro-kernel panels
/// of one <see cref="ComputeContext"/>'s GEMM family and blocking, so that products with it read A in place (only a last micro-panel of fewer than MR rows is packed). Read-only
/// after construction: any number of threads may multiply with it at once. The kernel knows nothing of what B means.
/// </summary>
/// <remarks>
/// Each product gives the bits <see cref="Gemm.Multiply{T}(ComputeContext, bool, bool, int, int, int, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, bool, bool, IGemmBlockFinish?)"/>
/// gives for (transA = false, transB = true) on the same context, with C filled with the row <c>rowInit</c> and
/// accumulated into (or overwritten without one): the same depth blocks, the same micro-kernel chains and the same
/// choice of the tiny and narrow paths; only exact zero products may be skipped differently (the sign of a zero).
/// A batch of one row runs as a matrix-vector product over the same panels (one FMA chain per output, as the
/// micro-kernel's), reading only the depth steps where the row is not zero.
/// </remarks>
public sealed unsafe class PackedMatrix<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly byte[]? _storage;
    private readonly T* _packed;
    private readonly T[]? _plain;

    /// <param name="context">The context whose GEMM family and tuning the panels are laid out for; products must use the same.</param>
    /// <param name="n">Rows of the stored B (columns of C).</param>
    /// <param name="k">Columns of the stored B (the depth).</param>
    /// <param name="b">B stored n×k, row-major.</param>
    public PackedMatrix(ComputeContext context, int n, int k, ReadOnlySpan<T> b)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (b.Length < (long)n * k) throw new ArgumentException($"B holds {b.Length} values, needs {n}×{k}");
        N = n;
        K = k;
        Path = context.GemmPath;
        Tuning = context.Tuning;
        bool fast = typeof(T) == typeof(float) || typeof(T) == typeof(double);
        Narrow = fast && n <= Tuning.NarrowDotMaxN && k >= 32 && Vector256.IsHardwareAccelerated;
        // The plain copy serves the paths that read B in place: the narrow dot products, the tiny loop (a product
        // of at most TinyMacs multiply-adds, possible only when n·k is that small) and element types without kernels.
        // Pinned: the kernels read it through PlainPointer, and a compacting collection (another thread allocating)
        // would otherwise move it under a running product (CI saw a narrow layer read freed memory: −9.51 for −9.34).
        if (Narrow || !fast || (long)n * k <= Tuning.TinyMacs)
        {
            _plain = GC.AllocateUninitializedArray<T>(n * k, pinned: true);
            b[..(n * k)].CopyTo(_plain);
        }
        if (Narrow || !fast || k == 0) return;
        (MR, NR) = Gemm.Tile<T>(Path);
        KC = Path switch
        {
            GemmPath.Avx512 => CacheBlockedGemm<T, Avx512Kernel<T>>.Blocks(Tuning, k).KC,
            GemmPath.Avx2 => CacheBlockedGemm<T, Avx2Kernel<T>>.Blocks(Tuning, k).KC,
            _ => CacheBlockedGemm<T, PortableKernel<T>>.Blocks(Tuning, k).KC,
        };
        Panels = (n + NR - 1) / NR;
        long values = (long)Panels * NR * k;
        long bytes = values * sizeof(T) + 64;
        if (bytes > Array.MaxLength) throw new OutOfMemoryException($"a packed {n}×{k} matrix is too large");
        _storage = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        nint p = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_storage));
        _packed = (T*)((p + 63) & ~(nint)63);
        fixed (T* pb = b)
        {
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                T* dst = _packed + (long)pc * Panels * NR;
                switch (Path)
                {
                    case GemmPath.Avx512: CacheBlockedGemm<T, Avx512Kernel<T>>.PackB(true, pb, k, pc, kc, 0, n, dst); break;
                    case GemmPath.Avx2: CacheBlockedGemm<T, Avx2Kernel<T>>.PackB(true, pb, k, pc, kc, 0, n, dst); break;
                    default: CacheBlockedGemm<T, PortableKernel<T>>.PackB(true, pb, k, pc, kc, 0, n, dst); break;
                }
            }
        }
    }

    /// <summary>Columns of C (rows of the stored B).</summary>
    public int N { get; }
    /// <summary>The depth (columns of the stored B).</summary>
    public int K { get; }
    /// <summary>The micro-kernel family B was packed for: the context's <see cref="ComputeContext.GemmPath"/> at packing time.</summary>
    public GemmPath Path { get; }
    /// <summary>The blocking B was packed with: the context's <see cref="ComputeContext.Tuning"/> at packing time.</summary>
    public KernelTuning Tuning { get; }
    /// <summary>Whether products run as in-place dot products (few columns), as <see cref="Gemm"/> would run them.</summary>
    public bool Narrow { get; }
    internal int MR { get; }
    internal int NR { get; }
    internal int KC { get; }
    /// <summary>NR-column panels of the packed B (0 when not packed).</summary>
    internal int Panels { get; }

    /// <summary>The panel q of depth block pc (kc rows of NR values).</summary>
    internal T* Panel(int pc, int kc, int q) => _packed + (long)pc * Panels * NR + (long)q * kc * NR;

    /// <summary>
    /// C[m×n] = A·Bᵀ with A stored m×k: C's rows start as <paramref name="rowInit"/> (n values, e.g. a bias) and the
    /// product is added, or C is overwritten when <paramref name="rowInit"/> is empty. <paramref name="finish"/> is
    /// called for each finished block of C on the thread that computed it.
    /// </summary>
    /// <remarks>With <paramref name="epilogue"/> <see cref="GemmEpilogue.Relu"/>, each element becomes C &gt; 0 ? C : +0 (NaN too becomes +0), as the
    /// tape's relu computes it, before it is stored (so before <paramref name="finish"/> sees its block).</remarks>
    public void Multiply(ComputeContext context, int m, ReadOnlySpan<T> a, Span<T> c, ReadOnlySpan<T> rowInit = default, IGemmBlockFinish? finish = null,
        GemmEpilogue epilogue = GemmEpilogue.None)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        if (context.GemmPath != Path || context.Tuning != Tuning)
            throw new ArgumentException($"the matrix was packed for {Path} kernels and another tuning: multiply on the context it was packed for");
        if (a.Length < (long)m * K) throw new ArgumentException($"A holds {a.Length} values, needs {m}×{K}");
        if (c.Length < (long)m * N) throw new ArgumentException($"C holds {c.Length} values, needs {m}×{N}");
        if (!rowInit.IsEmpty && rowInit.Length != N) throw new ArgumentException($"the row C starts from holds {rowInit.Length} values, needs {N}");
        if ((uint)epilogue > (uint)GemmEpilogue.Relu) throw new ArgumentOutOfRangeException(nameof(epilogue), epilogue, "not a GemmEpilogue");   // Enum.IsDefined allocated 240 bytes a call
        if (m == 0) return;
        fixed (T* pa = a)
        fixed (T* pc = c)
        fixed (T* pi = rowInit)
        {
            PackedGemm.Run(context, this, m, pa, K, pc, N, rowInit.IsEmpty ? null : pi, finish, epilogue == GemmEpilogue.Relu);
        }
        // the kernels read this matrix's storage through raw pointers: it must outlive the product even when the
        // caller drops its last reference to the matrix during the call
        GC.KeepAlive(this);
    }

    /// <summary>The plain copy, which is pinned (allocated on the pinned heap), so the pointer stays valid.</summary>
    internal T* PlainPointer => (T*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_plain!));
    internal bool HasPlain => _plain is not null;
}

/// <summary>What a product with a <see cref="PackedMatrix{T}"/> applies to each element of C as it is finished, in registers.</summary>
public enum GemmEpilogue
{
    /// <summary>C is the product (plus the row init).</summary>
    None,
    /// <summary>C = max(C, 0), exactly as <see cref="ActivationKernels.ReluForward{T}"/> computes it (z &gt; 0 ? z : +0).</summary>
    Relu,
}

/// <summary>The products with a <see cref="PackedMatrix{T}"/>: dispatch, the thread split, the blocked loop and the one-row loop.</summary>
internal static unsafe class PackedGemm
{
    public static void Run<T>(ComputeContext context, PackedMatrix<T> b, int m, T* a, nint lda, T* c, nint ldc, T* init, IGemmBlockFinish? finish, bool relu)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = b.N, k = b.K;
        var tuning = context.Tuning;
        long macs = (long)m * n * k;
        // The paths Gemm takes for these shapes, in the same order, so that the bits agree.
        if (k == 0 || macs <= tuning.TinyMacs || b.Narrow || b.Panels == 0)
        {
            FillRows(init, c, ldc, m, 0, n);
            if (k == 0) { if (init == null) for (int i = 0; i < m; i++) new Span<T>(c + i * ldc, n).Clear(); }
            else if (macs <= tuning.TinyMacs || !b.Narrow)
                Gemm.Tiny(false, true, m, n, k, a, lda, b.PlainPointer, k, c, ldc, init != null);
            else GemmSmall.DotNT(m, n, k, a, lda, b.PlainPointer, k, c, ldc, init != null);
            if (relu) Relu(c, ldc, m, 0, n);
            finish?.Finish(0, m, 0, n);
            return;
        }
        long bytes = (long)n * k * sizeof(T);
        int parts = (int)Math.Clamp(Math.Max(macs / tuning.MinMacsPerThread, bytes / tuning.MinPackedBytesPerThread), 1, context.Threads);
        int actual = m >= PackedGemmJob<T>.RowSplitMinRows * parts ? parts : Math.Min(parts, b.Panels);
        if (actual >= 2 && context.Pool.TryClaim())
        {
            var job = context.Scratch.PackedGemmJob<T>();
            try
            {
                job.Prepare(context, b, m, a, lda, c, ldc, init, finish, relu);
                context.Pool.RunClaimed(job, actual);
            }
            finally
            {
                job.Clear();
                context.Pool.Release();
            }
            return;
        }
        Serial(context, b, m, a, lda, c, ldc, init, 0, b.Panels, finish, relu);
    }

    /// <summary>The relu epilogue over rows of C where no kernel applied it: C = C &gt; 0 ? C : +0, as the tape's relu.</summary>
    private static void Relu<T>(T* c, nint ldc, int m, int j0, int j1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            var row = new Span<T>(c + i * ldc + j0, j1 - j0);
            ActivationKernels.ReluForward<T>(row, row);
        }
    }

    private static void FillRows<T>(T* init, T* c, nint ldc, int m, int j0, int j1) where T : unmanaged
    {
        if (init == null) return;
        var row = new ReadOnlySpan<T>(init + j0, j1 - j0);
        for (int i = 0; i < m; i++) row.CopyTo(new Span<T>(c + i * ldc + j0, j1 - j0));
    }

    /// <summary>
    /// Panels [q0, q1) of the product (columns q0·NR … min(n, q1·NR)) on the calling thread. <paramref name="a"/> and
    /// <paramref name="c"/> may start at row <paramref name="row0"/> of the whole product, which the finish is told.
    /// </summary>
    public static void Serial<T>(ComputeContext context, PackedMatrix<T> b, int m, T* a, nint lda, T* c, nint ldc, T* init,
        int q0, int q1, IGemmBlockFinish? finish, bool relu, int row0 = 0)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (b.Path)
        {
            case GemmPath.Avx512: Blocked<T, Avx512Kernel<T>>.Run(context, b, m, a, lda, c, ldc, init, q0, q1, finish, relu, row0); break;
            case GemmPath.Avx2: Blocked<T, Avx2Kernel<T>>.Run(context, b, m, a, lda, c, ldc, init, q0, q1, finish, relu, row0); break;
            default: Blocked<T, PortableKernel<T>>.Run(context, b, m, a, lda, c, ldc, init, q0, q1, finish, relu, row0); break;
        }
    }

    private static class Blocked<T, K> where T : unmanaged, IFloatingPointIeee754<T> where K : struct, IMicroKernel<T>
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(ComputeContext context, PackedMatrix<T> b, int m, T* a, nint lda, T* c, nint ldc, T* init,
            int q0, int q1, IGemmBlockFinish? finish, bool relu, int row0)
        {
            int MR = K.MR, NR = K.NR, n = b.N, k = b.K, KC = b.KC;
            int j0 = q0 * NR, j1 = Math.Min(n, q1 * NR);
            if (j1 <= j0) return;
            var scratch = context.Scratch;
            int kcMax = Math.Min(KC, k);
            if (m == 1)
            {
                int* steps = scratch.StepsA(kcMax);
                FillRows(init, c, ldc, 1, j0, j1);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    int count = 0;
                    T* x = a + pc;
                    for (int p = 0; p < kc; p++) { steps[count] = p; count += x[p] != T.Zero ? 1 : 0; }
                    OneRow.Run(b.Path, count, steps, x, b, pc, kc, q0, q1, c, init != null || pc > 0);
                }
                if (relu) Relu(c, ldc, 1, j0, j1);
                finish?.Finish(row0, row0 + 1, j0, j1);
                return;
            }
            // Row blocks balanced, and stretched by up to a quarter before a block is added: m = 128 against the
            // tuning's 120 (k = 784) runs as one block, not 120 + 8, whose tail re-streams all of B for one panel of A.
            // (The blocking along m changes no element's sum, so the bits stay Gemm's.)
            int mcTuned = CacheBlockedGemm<T, K>.Blocks(context.Tuning, k).MC;
            int rowBlocks = Math.Max(1, (int)Math.Ceiling(m / (mcTuned * 1.25)));
            int MC = ((m + rowBlocks - 1) / rowBlocks + MR - 1) / MR * MR;
            int mcMax = Math.Min(MC, (m + MR - 1) / MR * MR);
            // A is read in place, MR rows at a time (as MLAS reads it): packing it cost a copy of A per product (1.5%
            // of `bench infer` at batch 128). Only a last micro-panel of fewer than MR rows is packed, zero-padded, so
            // that no kernel reads past A's last row.
            T* bufA = scratch.PackedA<T>((long)MR * kcMax);
            int* stepsA = scratch.StepsA((long)mcMax / MR * kcMax);
            int* countA = stackalloc int[mcMax / MR];
            T* tile = stackalloc T[MR * NR];
            for (int ic = 0; ic < m; ic += MC)
            {
                int mc = Math.Min(MC, m - ic);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    // C starts as the row init (added in the kernel's store, as the tape adds its bias: init + product)
                    // in the first depth block, and accumulates in the others
                    T* first = pc == 0 ? init : null;
                    bool last = pc + KC >= k, reluHere = relu && last;
                    int ragged = mc % MR;
                    if (ragged != 0) CacheBlockedGemm<T, K>.PackA(false, a, lda, ic + mc - ragged, ragged, pc, kc, bufA);
                    for (int q = 0; q < (mc + MR - 1) / MR; q++)
                    {
                        int* steps = stepsA + (long)q * kcMax;
                        countA[q] = q * MR + MR <= mc
                            ? CacheBlockedGemm<T, K>.NonzeroStepsOfRows(a + (long)(ic + q * MR) * lda + pc, lda, MR, kc, steps)
                            : CacheBlockedGemm<T, K>.NonzeroSteps(bufA, MR, kc, steps);
                    }
                    for (int q = q0; q < q1; q++)
                    {
                        int jr = q * NR;
                        int nr = Math.Min(NR, n - jr);
                        T* bp = b.Panel(pc, kc, q);
                        for (int ir = 0; ir < mc; ir += MR)
                        {
                            int mr = Math.Min(MR, mc - ir);
                            T* cp = c + (long)(ic + ir) * ldc + jr;
                            int nA = countA[ir / MR];
                            int* steps = stepsA + (long)(ir / MR) * kcMax;
                            T* ap = a + (long)(ic + ir) * lda + pc;
                            T* add = pc > 0 ? cp : first == null ? null : first + jr;
                            nint ldAdd = pc > 0 ? ldc : 0;
                            if (mr == MR && nr == NR)
                            {
                                if (nA >= kc) K.RunRows(kc, ap, lda, bp, NR, cp, ldc, add, ldAdd, reluHere);
                                else K.RunRowsIndexed(nA, steps, ap, lda, bp, NR, cp, ldc, add, ldAdd, reluHere);
                                continue;
                            }
                            // a partial tile: computed whole into the scratch tile, then its corner reaches C
                            if (mr == MR)
                            {
                                if (nA >= kc) K.RunRows(kc, ap, lda, bp, NR, tile, NR, null, 0, false);
                                else K.RunRowsIndexed(nA, steps, ap, lda, bp, NR, tile, NR, null, 0, false);
                            }
                            else if (nA >= kc) K.Run(kc, bufA, bp, NR, tile, NR, false);
                            else K.RunIndexed(nA, steps, bufA, bp, NR, tile, NR, false);
                            CacheBlockedGemm<T, K>.StoreTile(cp, ldc, tile, NR, mr, nr, add, ldAdd, reluHere);
                        }
                    }
                }
                finish?.Finish(row0 + ic, row0 + ic + mc, j0, j1);
            }
        }
    }

    /// <summary>
    /// One row of A against packed panels: for each output j, acc = Σ_p x[p]·B[p, j] as one FMA chain over the listed
    /// depth steps (the micro-kernel's chain for that element), then C = acc (+ C when <c>load</c>). Four panels at a
    /// time, so that eight independent chains hide the FMA latency while the panels stream from cache.
    /// </summary>
    internal static class OneRow
    {
        public static void Run<T>(GemmPath path, int count, int* ks, T* x, PackedMatrix<T> b, int pc, int kc, int q0, int q1, T* c, bool load)
            where T : unmanaged, IFloatingPointIeee754<T>
        {
            int NR = b.NR, n = b.N;
            T* tmp = stackalloc T[4 * NR];
            for (int q = q0; q < q1;)
            {
                int group = Math.Min(4, q1 - q);
                T* bp = b.Panel(pc, kc, q);
                nint stride = (nint)kc * NR;
                switch (path)
                {
                    case GemmPath.Avx512: Group512(count, ks, x, bp, stride, group, tmp); break;
                    case GemmPath.Avx2: Group256(count, ks, x, bp, stride, group, tmp); break;
                    default: GroupPortable(count, ks, x, bp, stride, group, tmp); break;
                }
                int jr = q * NR, w = Math.Min(group * NR, n - jr);
                T* cp = c + jr;
                if (load) for (int j = 0; j < w; j++) cp[j] = tmp[j] + cp[j];
                else for (int j = 0; j < w; j++) cp[j] = tmp[j];
                q += group;
            }
        }

        // Each group writes group·NR sums to tmp; NR is two vectors of the path's width.

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Group512<T>(int count, int* ks, T* x, T* b, nint stride, int group, T* tmp) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int V = Vector512<T>.Count, NR = 2 * V;
            if (group == 4)
            {
                Vector512<T> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                T* b1 = b + stride, b2 = b1 + stride, b3 = b2 + stride;
                for (int t = 0; t < count; t++)
                {
                    int p = ks[t];
                    var xv = Vector512.Create(x[p]);
                    nint o = (nint)p * NR;
                    a0 = Fma512(xv, Vector512.Load(b + o), a0); a1 = Fma512(xv, Vector512.Load(b + o + V), a1);
                    a2 = Fma512(xv, Vector512.Load(b1 + o), a2); a3 = Fma512(xv, Vector512.Load(b1 + o + V), a3);
                    a4 = Fma512(xv, Vector512.Load(b2 + o), a4); a5 = Fma512(xv, Vector512.Load(b2 + o + V), a5);
                    a6 = Fma512(xv, Vector512.Load(b3 + o), a6); a7 = Fma512(xv, Vector512.Load(b3 + o + V), a7);
                }
                a0.Store(tmp); a1.Store(tmp + V); a2.Store(tmp + 2 * V); a3.Store(tmp + 3 * V);
                a4.Store(tmp + 4 * V); a5.Store(tmp + 5 * V); a6.Store(tmp + 6 * V); a7.Store(tmp + 7 * V);
                return;
            }
            for (int g = 0; g < group; g++, b += stride)
            {
                Vector512<T> a0 = default, a1 = default;
                for (int t = 0; t < count; t++)
                {
                    int p = ks[t];
                    var xv = Vector512.Create(x[p]);
                    a0 = Fma512(xv, Vector512.Load(b + (nint)p * NR), a0); a1 = Fma512(xv, Vector512.Load(b + (nint)p * NR + V), a1);
                }
                a0.Store(tmp + g * NR); a1.Store(tmp + g * NR + V);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Group256<T>(int count, int* ks, T* x, T* b, nint stride, int group, T* tmp) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int V = Vector256<T>.Count, NR = 2 * V;
            if (group == 4)
            {
                Vector256<T> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                T* b1 = b + stride, b2 = b1 + stride, b3 = b2 + stride;
                for (int t = 0; t < count; t++)
                {
                    int p = ks[t];
                    var xv = Vector256.Create(x[p]);
                    nint o = (nint)p * NR;
                    a0 = Fma256(xv, Vector256.Load(b + o), a0); a1 = Fma256(xv, Vector256.Load(b + o + V), a1);
                    a2 = Fma256(xv, Vector256.Load(b1 + o), a2); a3 = Fma256(xv, Vector256.Load(b1 + o + V), a3);
                    a4 = Fma256(xv, Vector256.Load(b2 + o), a4); a5 = Fma256(xv, Vector256.Load(b2 + o + V), a5);
                    a6 = Fma256(xv, Vector256.Load(b3 + o), a6); a7 = Fma256(xv, Vector256.Load(b3 + o + V), a7);
                }
                a0.Store(tmp); a1.Store(tmp + V); a2.Store(tmp + 2 * V); a3.Store(tmp + 3 * V);
                a4.Store(tmp + 4 * V); a5.Store(tmp + 5 * V); a6.Store(tmp + 6 * V); a7.Store(tmp + 7 * V);
                return;
            }
            for (int g = 0; g < group; g++, b += stride)
            {
                Vector256<T> a0 = default, a1 = default;
                for (int t = 0; t < count; t++)
                {
                    int p = ks[t];
                    var xv = Vector256.Create(x[p]);
                    a0 = Fma256(xv, Vector256.Load(b + (nint)p * NR), a0); a1 = Fma256(xv, Vector256.Load(b + (nint)p * NR + V), a1);
                }
                a0.Store(tmp + g * NR); a1.Store(tmp + g * NR + V);
            }
        }

        /// <summary>The portable family's panels with its multiply-add (<see cref="Vector.MultiplyAddEstimate(Vector{float}, Vector{float}, Vector{float})"/>, as its micro-kernel).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void GroupPortable<T>(int count, int* ks, T* x, T* b, nint stride, int group, T* tmp) where T : unmanaged, IFloatingPointIeee754<T>
        {
            int V = Vector<T>.Count, NR = 2 * V;
            for (int g = 0; g < group; g++, b += stride)
            {
                Vector<T> a0 = default, a1 = default;
                for (int t = 0; t < count; t++)
                {
                    int p = ks[t];
                    var xv = Vector.Create(x[p]);
                    a0 = MulAddPortable(xv, Vector.Load(b + (nint)p * NR), a0); a1 = MulAddPortable(xv, Vector.Load(b + (nint)p * NR + V), a1);
                }
                a0.Store(tmp + g * NR); a1.Store(tmp + g * NR + V);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<T> Fma512<T>(Vector512<T> x, Vector512<T> y, Vector512<T> acc)
        {
            if (typeof(T) == typeof(float)) return Vector512.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
            return Vector512.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<T> Fma256<T>(Vector256<T> x, Vector256<T> y, Vector256<T> acc)
        {
            if (typeof(T) == typeof(float)) return Vector256.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
            return Vector256.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector<T> MulAddPortable<T>(Vector<T> x, Vector<T> y, Vector<T> acc)
        {
            if (typeof(T) == typeof(float))
                return Vector.MultiplyAddEstimate(x.As<T, float>(), y.As<T, float>(), acc.As<T, float>()).As<float, T>();
            return Vector.MultiplyAddEstimate(x.As<T, double>(), y.As<T, double>(), acc.As<T, double>()).As<double, T>();
        }
    }
}

/// <summary>One threaded product with a packed matrix: each part takes a contiguous run of rows of A and C (from
/// <see cref="RowSplitMinRows"/> rows a part) or else of B's panels (columns of C).</summary>
internal sealed unsafe class PackedGemmJob<T> : WorkItem where T : unmanaged, IFloatingPointIeee754<T>
{
    private ComputeContext? _context;
    private PackedMatrix<T>? _b;
    private IGemmBlockFinish? _finish;
    private bool _relu;
    private int _m;
    private T* _a, _c, _init;
    private nint _lda, _ldc;

    public void Prepare(ComputeContext context, PackedMatrix<T> b, int m, T* a, nint lda, T* c, nint ldc, T* init, IGemmBlockFinish? finish, bool relu)
    {
        _context = context; _b = b; _m = m; _a = a; _lda = lda; _c = c; _ldc = ldc; _init = init; _finish = finish; _relu = relu;
    }

    public void Clear()
    {
        _context = null; _b = null; _finish = null;
        _a = _c = _init = null;
    }

    /// <summary>
    /// Rows per part at which the parts split the rows rather than the columns. Split by columns, every part reads all
    /// of A (the packed B is shared and read-only); split by rows, each reads its own rows and all of B. Measured when
    /// A was still packed by each part (`bench infer`, 784-512-512-10, 2 threads, Zen 5): batch 1024 211.8k samples/s
    /// split by columns, 240.4k by rows; batch 128 187k by columns, 218–226k by rows of 64 (ONNX Runtime: 221k). Rows
    /// or columns change no element's sum, so the bits are the same either way.
    /// </summary>
    internal const int RowSplitMinRows = 64;

    public override void Execute(int part, int parts)
    {
        int panels = _b!.Panels;
        if (_m >= RowSplitMinRows * parts)
        {
            // row blocks of whole 8-row groups (the AVX-512 and portable tiles; AVX2's 6-row tile packs a last ragged
            // micro-panel of each part)
            int groups = (_m + 7) / 8;
            int r0 = Math.Min(_m, (int)((long)groups * part / parts) * 8), r1 = Math.Min(_m, (int)((long)groups * (part + 1) / parts) * 8);
            if (r1 > r0) PackedGemm.Serial(_context!, _b, r1 - r0, _a + r0 * _lda, _lda, _c + r0 * _ldc, _ldc, _init, 0, panels, _finish, _relu, r0);
            return;
        }
        int q0 = (int)((long)panels * part / parts), q1 = (int)((long)panels * (part + 1) / parts);
        if (q1 > q0) PackedGemm.Serial(_context!, _b, _m, _a, _lda, _c, _ldc, _init, q0, q1, _finish, _relu);
    }
}
