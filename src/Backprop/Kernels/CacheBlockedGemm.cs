using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Backprop.Kernels;

/// <summary>A register-tiled micro-kernel: C[MR×NR] (+)= Apanel[MR×kc]·Bpanel[kc×NR].</summary>
internal unsafe interface IMicroKernel<T> where T : unmanaged
{
    /// <summary>Rows of the register tile.</summary>
    static abstract int MR { get; }
    /// <summary>Columns of the register tile.</summary>
    static abstract int NR { get; }
    static abstract bool IsSupported { get; }

    /// <summary>
    /// <paramref name="a"/>: packed A micro-panel, kc steps of MR values. <paramref name="b"/>: kc rows of NR values,
    /// <paramref name="bs"/> elements apart (NR when packed). C tile rows are <paramref name="ldc"/> apart;
    /// <paramref name="load"/> adds the product to C, otherwise C is overwritten. The full MR×NR tile is written.
    /// </summary>
    static abstract void Run(int kc, T* a, T* b, nint bs, T* c, nint ldc, bool load);

    /// <summary>
    /// As <see cref="Run"/> over only the depth steps p listed in <paramref name="ks"/> (<paramref name="count"/> of
    /// them, increasing): the steps where the A micro-panel's column or the B row is all zeros, whose products add
    /// nothing, are left out.
    /// </summary>
    static abstract void RunIndexed(int count, int* ks, T* a, T* b, nint bs, T* c, nint ldc, bool load);

    /// <summary>
    /// As <see cref="Run"/> with A read in place: row r of the MR×kc micro-panel starts at <paramref name="a"/> + r·<paramref name="lda"/>
    /// (what an A that is not packed gives: no copy). C = A·B + the addend, whose rows are <paramref name="ldAdd"/>
    /// apart (0: one row for every row, as a bias; C itself with ldc: accumulate), or C = A·B when
    /// <paramref name="add"/> is null; with <paramref name="relu"/>, C = C &gt; 0 ? C : +0 before the store (the tape's
    /// relu on the finished sum). Each element's sum is formed as <see cref="Run"/> forms it.
    /// </summary>
    static abstract void RunRows(int kc, T* a, nint lda, T* b, nint bs, T* c, nint ldc, T* add, nint ldAdd, bool relu);

    /// <summary>As <see cref="RunRows"/> over only the depth steps listed in <paramref name="ks"/> (see <see cref="RunIndexed"/>).</summary>
    static abstract void RunRowsIndexed(int count, int* ks, T* a, nint lda, T* b, nint bs, T* c, nint ldc, T* add, nint ldAdd, bool relu);
}

/// <summary>The BLIS-style blocked product with one micro-kernel (single-threaded; threads split C before calling it).</summary>
internal static unsafe class CacheBlockedGemm<T, K>
    where T : unmanaged, IFloatingPointIeee754<T>
    where K : struct, IMicroKernel<T>
{
    /// <summary>The cache blocks (depth, rows of A, columns of B) the tuning gives for a product of depth <paramref name="k"/>.</summary>
    internal static (int KC, int MC, int NC) Blocks(KernelTuning tuning, int k)
    {
        int MR = K.MR, NR = K.NR;
        int KC = Math.Max(16, tuning.KcBytesFor<T>() / (NR * sizeof(T)) & ~7);
        int MC = Math.Max(MR, tuning.McBytes / (KC * sizeof(T)) / MR * MR);
        int NC = Math.Max(NR, tuning.Nc / NR * NR);
        // Balance the depth blocks (k = 784 runs as 2 × 392, not 512 + 272).
        KC = Math.Min(KC, (k + (k + KC - 1) / KC - 1) / ((k + KC - 1) / KC) + 7 & ~7);
        return (KC, MC, NC);
    }

    /// <summary>Values of T in the packed A and B blocks of an m×n×k call, and whether B is read in place.</summary>
    private static void BufferSizes(KernelTuning tuning, bool transB, int m, int n, int k, out bool directB, out long sizeA, out long sizeB)
    {
        var (KC, MC, NC) = Blocks(tuning, k);
        int kcMax = Math.Min(KC, k);
        directB = !transB && m <= tuning.DirectBMaxRows;
        sizeA = (long)Math.Min(MC, RoundUp(m, K.MR)) * kcMax;
        sizeB = directB ? (long)K.NR * kcMax : (long)Math.Min(NC, RoundUp(n, K.NR)) * kcMax;
    }

    /// <summary>Grows the packing buffers of <paramref name="scratch"/> to what <see cref="Run"/> would need for this call, computing nothing.</summary>
    public static void Reserve(KernelTuning tuning, KernelScratch scratch, bool transB, int m, int n, int k)
    {
        BufferSizes(tuning, transB, m, n, k, out bool directB, out long sizeA, out long sizeB);
        scratch.PackedA<T>(sizeA);
        scratch.PackedB<T>(sizeB);   // B read in place still packs its edge panel
        scratch.StepsA(sizeA / K.MR);
        if (!directB) scratch.StepsB(sizeB / K.NR);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(KernelTuning tuning, KernelScratch scratch, bool transA, bool transB, int m, int n, int k,
        T* a, nint lda, T* b, nint ldb, T* c, nint ldc, bool accumulate)
    {
        int MR = K.MR, NR = K.NR;
        var (KC, MC, NC) = Blocks(tuning, k);
        int kcMax = Math.Min(KC, k);
        int mcMax = Math.Min(MC, RoundUp(m, MR));
        int ncMax = Math.Min(NC, RoundUp(n, NR));
        BufferSizes(tuning, transB, m, n, k, out bool directB, out long sizeA, out long sizeB);
        T* bufA = scratch.PackedA<T>(sizeA);
        T* bufB = scratch.PackedB<T>(sizeB);
        T* tile = stackalloc T[MR * NR];
        // Zero skipping: each packed panel lists its depth steps that are not all zeros (a batch of images has
        // blank borders, ReLU outputs are half zeros); a tile then runs only the steps of the shorter list. The
        // skipped products are exact zeros, so the result is the same (up to the sign of a zero, and except that
        // 0·∞ = NaN from the other operand is not formed).
        int panelsA = mcMax / MR, panelsB = directB ? 0 : ncMax / NR;
        int* stepsA = scratch.StepsA(sizeA / MR);
        int* stepsB = directB ? null : scratch.StepsB(sizeB / NR);
        int* countA = stackalloc int[panelsA];
        int* countB = stackalloc int[Math.Max(1, panelsB)];

        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                bool load = accumulate || pc > 0;
                int fullPanels = nc / NR;
                if (directB)
                {
                    // Only the ragged last panel is packed (zero-padded); full panels are read from B in place.
                    if (nc % NR != 0) PackB(false, b, ldb, pc, kc, jc + fullPanels * NR, nc - fullPanels * NR, bufB);
                }
                else
                {
                    PackB(transB, b, ldb, pc, kc, jc, nc, bufB);
                    for (int q = 0; q < (nc + NR - 1) / NR; q++)
                        countB[q] = NonzeroSteps(bufB + (long)q * NR * kc, NR, kc, stepsB + (long)q * kcMax);
                }
                for (int ic = 0; ic < m; ic += MC)
                {
                    int mc = Math.Min(MC, m - ic);
                    // C from beyond the L2: each tile's rows are fetched while the tile before it is computed
                    bool prefetchC = Sse.IsSupported && PrefetchesC(tuning, mc, nc);
                    PackA(transA, a, lda, ic, mc, pc, kc, bufA);
                    for (int q = 0; q < (mc + MR - 1) / MR; q++)
                        countA[q] = NonzeroSteps(bufA + (long)q * MR * kc, MR, kc, stepsA + (long)q * kcMax);
                    for (int jr = 0; jr < nc; jr += NR)
                    {
                        int nr = Math.Min(NR, nc - jr);
                        T* bp;
                        nint bs;
                        if (!directB) { bp = bufB + (long)jr * kc; bs = NR; }
                        else if (nr == NR) { bp = b + (long)pc * ldb + jc + jr; bs = ldb; }
                        else { bp = bufB; bs = NR; }
                        for (int ir = 0; ir < mc; ir += MR)
                        {
                            int mr = Math.Min(MR, mc - ir);
                            T* ap = bufA + (long)ir * kc;
                            T* cp = c + (long)(ic + ir) * ldc + jc + jr;
                            // The shorter list of non-zero steps, A's or B's; null when neither skips any.
                            int nA = countA[ir / MR], nB = directB ? kc : countB[jr / NR];
                            int* ks = nA >= kc && nB >= kc ? null
                                : nA <= nB ? stepsA + (long)(ir / MR) * kcMax : stepsB + (long)(jr / NR) * kcMax;
                            int nk = Math.Min(nA, nB);
                            // the tile computed next: down this column panel, else the next panel's first, else the next row block's first
                            if (prefetchC)
                                PrefetchTile(ir + MR < mc ? cp + MR * ldc : jr + NR < nc ? c + (long)ic * ldc + jc + jr + NR : c + (long)(ic + mc) * ldc + jc, ldc);
                            // A partial tile is computed into the scratch tile, then copied (or added) into C.
                            bool full = mr == MR && nr == NR;
                            T* dst = full ? cp : tile;
                            nint ldd = full ? ldc : NR;
                            if (ks == null) K.Run(kc, ap, bp, bs, dst, ldd, full && load);
                            else K.RunIndexed(nk, ks, ap, bp, bs, dst, ldd, full && load);
                            if (!full) StoreTile(cp, ldc, tile, NR, mr, nr, load ? cp : null, ldc);
                        }
                    }
                }
            }
        }
    }

    private static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    /// <summary>Whether a depth block's sweep of an mc×nc block of C is larger than <see cref="KernelTuning.PrefetchCBytes"/>, so that its tiles are prefetched.</summary>
    internal static bool PrefetchesC(KernelTuning tuning, int mc, int nc) => (long)mc * nc * sizeof(T) > tuning.PrefetchCBytes;

    /// <summary>
    /// Prefetches the MR rows of the C tile at <paramref name="c"/> (the tile computed after the one about to be: down
    /// the column panel, the next panel's first, or the next row block's first), both ends of each row's NR values. A
    /// hint: the rows past C's last row or column that it may name are never read, and a prefetch does not fault.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchTile(T* c, nint ldc)
    {
        for (int r = 0; r < K.MR; r++)
        {
            byte* row = (byte*)(c + r * ldc);
            Sse.Prefetch0(row);
            Sse.Prefetch0(row + K.NR * sizeof(T) - sizeof(T));
        }
    }

    /// <summary>How many leading depth steps, all non-zero, make a panel count as dense without scanning the rest.</summary>
    internal const int DenseAfter = 32;

    /// <summary>
    /// Writes to <paramref name="ks"/> the depth steps p whose <paramref name="width"/> packed values are not all zero
    /// and returns how many; returns kc (nothing to skip, list unused) when the first <see cref="DenseAfter"/> steps
    /// are all non-zero, so dense operands pay for a short scan only (measured: a full scan cost 4–8% on dense steps).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static int NonzeroSteps(T* panel, int width, int kc, int* ks)
    {
        int n = 0;
        int V = Vector256<T>.Count;
        bool vector = Vector256.IsHardwareAccelerated && width % V == 0;
        for (int p = 0; p < kc; p++, panel += width)
        {
            bool nonzero;
            if (vector)
            {
                var any = ~Vector256.Equals(Vector256.Load(panel), Vector256<T>.Zero);
                for (int j = V; j < width; j += V) any |= ~Vector256.Equals(Vector256.Load(panel + j), Vector256<T>.Zero);
                nonzero = any != Vector256<T>.Zero;
            }
            else
            {
                int j = 0;
                while (j < width && panel[j] == T.Zero) j++;
                nonzero = j < width;
            }
            ks[n] = p;
            n += nonzero ? 1 : 0;
            if (p == DenseAfter - 1 && n == DenseAfter) return kc;
        }
        return n;
    }

    /// <summary>
    /// <see cref="NonzeroSteps"/> for <paramref name="rows"/> rows of A read in place (<paramref name="lda"/> apart, kc
    /// steps each): step p is listed when any row's value at p is not zero. A vector of steps at a time (8 float, 4 double), one load a row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static int NonzeroStepsOfRows(T* a, nint lda, int rows, int kc, int* ks)
    {
        int n = 0, p = 0;
        int V = Vector256<T>.Count;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; p + V <= kc; p += V)
            {
                T* row = a + p;
                var any = ~Vector256.Equals(Vector256.Load(row), Vector256<T>.Zero);
                for (int r = 1; r < rows; r++) any |= ~Vector256.Equals(Vector256.Load(row + r * lda), Vector256<T>.Zero);
                uint mask = any.ExtractMostSignificantBits();
                if (mask == (1u << V) - 1)
                {
                    for (int j = 0; j < V; j++) ks[n + j] = p + j;
                    n += V;
                }
                else
                    for (; mask != 0; mask &= mask - 1) ks[n++] = p + System.Numerics.BitOperations.TrailingZeroCount(mask);
                if (p + V >= DenseAfter && n == p + V) return kc;
            }
        }
        for (; p < kc; p++)
        {
            int r = 0;
            while (r < rows && a[r * lda + p] == T.Zero) r++;
            ks[n] = p;
            n += r < rows ? 1 : 0;
        }
        return n;
    }

    /// <summary>Packs rows ic..ic+mc of op(A), depths pc..pc+kc, into MR-row micro-panels (kc steps of MR values), zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackA(bool transA, T* a, nint lda, int ic, int mc, int pc, int kc, T* dst)
    {
        int MR = K.MR;
        for (int ir = 0; ir < mc; ir += MR)
        {
            int mr = Math.Min(MR, mc - ir);
            if (transA)
            {
                // A stored k×m: op(A)[i, p] = a[p*lda + i]; each depth step is a contiguous run of mr values.
                T* src = a + (long)pc * lda + ic + ir;
                if (mr == MR)
                {
                    for (int p = 0; p < kc; p++, src += lda, dst += MR)
                        Unsafe.CopyBlockUnaligned(dst, src, (uint)(MR * sizeof(T)));
                }
                else
                {
                    for (int p = 0; p < kc; p++, src += lda, dst += MR)
                    {
                        int r = 0;
                        for (; r < mr; r++) dst[r] = src[r];
                        for (; r < MR; r++) dst[r] = T.Zero;
                    }
                }
            }
            else
            {
                // A stored m×k: op(A)[i, p] = a[i*lda + p]; gather MR rows.
                T* src = a + (long)(ic + ir) * lda + pc;
                if (mr == MR)
                {
                    PackTransposed(src, lda, MR, kc, dst, MR);
                }
                else
                {
                    PackTransposed(src, lda, mr, kc, dst, MR);
                    for (int p = 0; p < kc; p++)
                        for (int r = mr; r < MR; r++) dst[p * MR + r] = T.Zero;
                }
                dst += MR * kc;
            }
        }
    }

    /// <summary>Packs columns jc..jc+nc of op(B), depths pc..pc+kc, into NR-column micro-panels (kc rows of NR values), zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackB(bool transB, T* b, nint ldb, int pc, int kc, int jc, int nc, T* dst)
    {
        int NR = K.NR;
        for (int jr = 0; jr < nc; jr += NR)
        {
            int nr = Math.Min(NR, nc - jr);
            if (!transB)
            {
                // B stored k×n: op(B)[p, j] = b[p*ldb + j]; each depth step is a contiguous run.
                T* src = b + (long)pc * ldb + jc + jr;
                if (nr == NR)
                {
                    for (int p = 0; p < kc; p++, src += ldb, dst += NR)
                        Unsafe.CopyBlockUnaligned(dst, src, (uint)(NR * sizeof(T)));
                }
                else
                {
                    for (int p = 0; p < kc; p++, src += ldb, dst += NR)
                    {
                        int j = 0;
                        for (; j < nr; j++) dst[j] = src[j];
                        for (; j < NR; j++) dst[j] = T.Zero;
                    }
                }
            }
            else
            {
                // B stored n×k: op(B)[p, j] = b[j*ldb + p]; gather NR rows of B.
                T* src = b + (long)(jc + jr) * ldb + pc;
                PackTransposed(src, ldb, nr, kc, dst, NR);
                if (nr < NR)
                    for (int p = 0; p < kc; p++)
                        for (int j = nr; j < NR; j++) dst[p * NR + j] = T.Zero;
                dst += NR * kc;
            }
        }
    }

    /// <summary>dst[p*width + r] = src[r*ld + p] for r &lt; rows, p &lt; kc (a transposing gather of <paramref name="rows"/> rows).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PackTransposed(T* src, nint ld, int rows, int kc, T* dst, int width)
    {
        // The portable family packs without AVX too, so that forcing it tests code that runs on any CPU.
        GemmPack.Transpose(src, ld, rows, kc, dst, width, vectorized: typeof(K) != typeof(PortableKernel<T>));
    }

    /// <summary>
    /// Writes the <paramref name="rows"/> × <paramref name="cols"/> corner of a scratch tile of row stride
    /// <paramref name="tileStride"/> into C, plus the addend's rows (<paramref name="ldAdd"/> apart: C itself with ldc to
    /// accumulate, 0 for one row under every row, as a bias) when <paramref name="add"/> is not null, then relu'd when
    /// asked (as the tape's relu): how a partial tile, computed whole into the tile by the micro-kernel, reaches the
    /// matrix, as the micro-kernel's own store would write it.
    /// </summary>
    internal static void StoreTile(T* c, nint ldc, T* tile, int tileStride, int rows, int cols, T* add, nint ldAdd, bool relu = false)
    {
        for (int r = 0; r < rows; r++)
        {
            T* crow = c + r * ldc, trow = tile + r * tileStride, arow = add + r * ldAdd;
            if (add != null) for (int j = 0; j < cols; j++) crow[j] = trow[j] + arow[j];
            else for (int j = 0; j < cols; j++) crow[j] = trow[j];
            if (relu)
            {
                var row = new Span<T>(crow, cols);
                ActivationKernels.ReluForward<T>(row, row);
            }
        }
    }
}
