using System.Numerics;
using System.Runtime.Intrinsics;

namespace Backprop.Kernels;

/// <summary>
/// Work on each finished block of C (rows i0..i1, columns j0..j1, exclusive ends), run by the thread that computed
/// the block while it is still in that thread's cache: how a caller fuses an element-wise pass over C (an
/// activation, say) into the product instead of streaming C through memory again. The kernel knows nothing of what
/// the work means.
/// </summary>
public interface IGemmBlockFinish
{
    /// <summary>
    /// Works on the finished block C[i0..i1, j0..j1] (exclusive ends). Called concurrently from several threads, each
    /// with its own disjoint block, so an implementation must be safe for that; it must not throw.
    /// </summary>
    /// <param name="i0">First row of the block.</param>
    /// <param name="i1">End (exclusive) of the block's rows.</param>
    /// <param name="j0">First column of the block.</param>
    /// <param name="j1">End (exclusive) of the block's columns.</param>
    void Finish(int i0, int i1, int j0, int j1);
}

/// <summary>
/// General matrix product on row-major, contiguous operands:
/// C[m×n] = op(A)·op(B) (or C += … when <c>accumulate</c>), where op(A) is m×k and op(B) is k×n.
/// With <c>transA</c>, A is stored k×m; with <c>transB</c>, B is stored n×k. No transpose is ever materialised.
/// This kernel knows nothing about graphs or autodiff.
/// </summary>
/// <remarks>
/// BLIS-style: panels of A and B are packed into reusable per-thread buffers and a register-tiled micro-kernel
/// (AVX-512 8×2 vectors, AVX2 6×2 vectors, or portable Vector&lt;T&gt; 4×2; written by tools/gen_microkernels.py) runs over cache blocks kc/mc/nc.
/// Large products split C across the worker pool of the <see cref="ComputeContext"/> they are given (its
/// <see cref="ComputeContext.Threads"/>), which also chooses the micro-kernel family and the blocking.
/// After warm-up a call allocates nothing.
/// </remarks>
public static class Gemm
{
    /// <summary>
    /// C = op(A)·op(B), or C += op(A)·op(B) with <paramref name="accumulate"/>, on contiguous row-major operands.
    /// </summary>
    /// <param name="context">What the product runs on: its threads, micro-kernel family and blocking.</param>
    /// <param name="transA">A is stored k×m and op(A) = Aᵀ (otherwise A is stored m×k).</param>
    /// <param name="transB">B is stored n×k and op(B) = Bᵀ (otherwise B is stored k×n).</param>
    /// <param name="m">Rows of C and of op(A).</param>
    /// <param name="n">Columns of C and of op(B).</param>
    /// <param name="k">The inner dimension: columns of op(A), rows of op(B).</param>
    /// <param name="a">A, at least m·k values.</param>
    /// <param name="b">B, at least k·n values.</param>
    /// <param name="c">C, at least m·n values, row-major m×n; written (or added to).</param>
    /// <param name="accumulate">Add the product to C's values instead of overwriting them.</param>
    /// <param name="rowSplit">
    /// When the product is split across threads, give each thread a block of C's rows (rather than the cheaper-to-pack
    /// split): for an output whose consumer then works on contiguous row blocks with the same threads, as the
    /// optimizer does with a weight gradient, so each thread finds its block in its own cache.
    /// </param>
    /// <param name="finish">Called once for each finished block of C, on the thread that computed it (see <see cref="IGemmBlockFinish"/>).</param>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is negative.</exception>
    /// <exception cref="ArgumentException">A, B or C holds fewer values than its shape needs.</exception>
    public static void Multiply<T>(ComputeContext context, bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, bool accumulate, bool rowSplit = false, IGemmBlockFinish? finish = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(context);
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), "dimensions must be non-negative");
        if (a.Length < (long)m * k) throw new ArgumentException($"A holds {a.Length} values, needs {m}×{k}");
        if (b.Length < (long)k * n) throw new ArgumentException($"B holds {b.Length} values, needs {k}×{n}");
        if (c.Length < (long)m * n) throw new ArgumentException($"C holds {c.Length} values, needs {m}×{n}");
        Multiply(context, transA, transB, m, n, k, a, Math.Max(1, transA ? m : k), b, Math.Max(1, transB ? k : n), c, n, accumulate, rowSplit, finish);
    }

    /// <summary>
    /// As <see cref="Multiply{T}(ComputeContext, bool, bool, int, int, int, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, bool, bool, IGemmBlockFinish?)"/>, with
    /// leading dimensions (row strides, in elements) for strided sub-matrices: A's stored rows are <paramref name="lda"/>
    /// apart (A stored m×k, or k×m with <paramref name="transA"/>), B's <paramref name="ldb"/> (k×n, or n×k), C's <paramref name="ldc"/>.
    /// </summary>
    public static unsafe void Multiply<T>(ComputeContext context, bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, Span<T> c, int ldc, bool accumulate, bool rowSplit = false,
        IGemmBlockFinish? finish = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(context);
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), "dimensions must be non-negative");
        if (m == 0 || n == 0) return;
        int aRows = transA ? k : m, aCols = transA ? m : k;
        int bRows = transB ? n : k, bCols = transB ? k : n;
        if (lda < Math.Max(1, aCols) || ldb < Math.Max(1, bCols) || ldc < n)
            throw new ArgumentException($"leading dimensions lda={lda}, ldb={ldb}, ldc={ldc} are too small");
        if (aRows > 0 && aCols > 0 && a.Length < (long)(aRows - 1) * lda + aCols) throw new ArgumentException($"A holds {a.Length} values, needs {aRows}×{aCols} (lda {lda})");
        if (bRows > 0 && bCols > 0 && b.Length < (long)(bRows - 1) * ldb + bCols) throw new ArgumentException($"B holds {b.Length} values, needs {bRows}×{bCols} (ldb {ldb})");
        if (c.Length < (long)(m - 1) * ldc + n) throw new ArgumentException($"C holds {c.Length} values, needs {m}×{n} (ldc {ldc})");

        fixed (T* pa = a)
        fixed (T* pb = b)
        fixed (T* pc = c)
        {
            Run(context, transA, transB, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate, rowSplit, finish);
        }
    }

    /// <summary>The pointer-level entry: validates nothing.</summary>
    internal static unsafe void Run<T>(ComputeContext context, bool transA, bool transB, int m, int n, int k,
        T* a, nint lda, T* b, nint ldb, T* c, nint ldc, bool accumulate, bool rowSplit = false,
        IGemmBlockFinish? finish = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m == 0 || n == 0) return;
        bool finished = Compute(context, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, rowSplit, finish);
        if (!finished) finish?.Finish(0, m, 0, n);
    }

    /// <summary>The product.</summary>
    /// <returns>Whether every block of C was already handed to <paramref name="finish"/> (the threaded path does so as each thread ends its block).</returns>
    private static unsafe bool Compute<T>(ComputeContext context, bool transA, bool transB, int m, int n, int k,
        T* a, nint lda, T* b, nint ldb, T* c, nint ldc, bool accumulate, bool rowSplit, IGemmBlockFinish? finish)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (k == 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++) new Span<T>(c + i * ldc, n).Clear();
            return false;
        }
        var tuning = context.Tuning;
        long macs = (long)m * n * k;
        if (macs <= tuning.TinyMacs)
        {
            Tiny(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
            return false;
        }
        if (!transA && transB && n <= tuning.NarrowDotMaxN && k >= 32 && Vector256.IsHardwareAccelerated
            && (typeof(T) == typeof(float) || typeof(T) == typeof(double)))
        {
            GemmSmall.DotNT(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
            return false;
        }
        int parts = (int)Math.Clamp(macs / tuning.MinMacsPerThread, 1, context.Threads);
        // The pool is claimed before the job is filled in: a nested product (from a finisher, on this thread or a
        // worker) or a concurrent caller then finds it busy and runs serially, never writing the running job's fields.
        if (parts > 1 && GemmJob<T>.Split(context.GemmPath, m, n, rowSplit, parts, out bool splitN, out int units, out int actual)
            && context.Pool.TryClaim())
        {
            var job = context.Scratch.GemmJob<T>();
            try
            {
                job.Prepare(context, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, finish, splitN, units, actual);
                context.Pool.RunClaimed(job, actual);
                return true;
            }
            finally
            {
                job.Clear();   // the job outlives the call in this thread's scratch: it must not keep the context or the finisher
                context.Pool.Release();
            }
        }
        Serial(context, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        return false;
    }

    /// <summary>The product on the calling thread, with the context's kernels, blocking and (this thread's) scratch.</summary>
    internal static unsafe void Serial<T>(ComputeContext context, bool transA, bool transB, int m, int n, int k,
        T* a, nint lda, T* b, nint ldb, T* c, nint ldc, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            Tiny(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
            return;
        }
        var tuning = context.Tuning;
        var scratch = context.Scratch;
        switch (context.GemmPath)
        {
            case GemmPath.Avx512:
                CacheBlockedGemm<T, Avx512Kernel<T>>.Run(tuning, scratch, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
                break;
            case GemmPath.Avx2:
                CacheBlockedGemm<T, Avx2Kernel<T>>.Run(tuning, scratch, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
                break;
            default:
                CacheBlockedGemm<T, PortableKernel<T>>.Run(tuning, scratch, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
                break;
        }
    }

    /// <summary>Grows this thread's packing buffers to what <see cref="Serial"/> would need for the same call, computing nothing.</summary>
    internal static void Reserve<T>(ComputeContext context, bool transB, int m, int n, int k)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double)) return;
        var tuning = context.Tuning;
        var scratch = context.Scratch;
        switch (context.GemmPath)
        {
            case GemmPath.Avx512: CacheBlockedGemm<T, Avx512Kernel<T>>.Reserve(tuning, scratch, transB, m, n, k); break;
            case GemmPath.Avx2: CacheBlockedGemm<T, Avx2Kernel<T>>.Reserve(tuning, scratch, transB, m, n, k); break;
            default: CacheBlockedGemm<T, PortableKernel<T>>.Reserve(tuning, scratch, transB, m, n, k); break;
        }
    }

    /// <summary>Micro-kernel tile (MR, NR) of a path for element type T.</summary>
    internal static (int MR, int NR) Tile<T>(GemmPath path) where T : unmanaged, IFloatingPointIeee754<T> => path switch
    {
        GemmPath.Avx512 => (Avx512Kernel<T>.MR, Avx512Kernel<T>.NR),
        GemmPath.Avx2 => (Avx2Kernel<T>.MR, Avx2Kernel<T>.NR),
        _ => (PortableKernel<T>.MR, PortableKernel<T>.NR),
    };

    internal static unsafe void Tiny<T>(bool transA, bool transB, int m, int n, int k,
        T* a, nint lda, T* b, nint ldb, T* c, nint ldc, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        nint ars = transA ? 1 : lda, acs = transA ? lda : 1;
        nint brs = transB ? 1 : ldb, bcs = transB ? ldb : 1;
        for (int i = 0; i < m; i++)
        {
            T* ai = a + i * ars;
            T* ci = c + i * ldc;
            for (int j = 0; j < n; j++)
            {
                T* bj = b + j * bcs;
                T s = T.Zero;
                for (int p = 0; p < k; p++) s += ai[p * acs] * bj[p * brs];
                ci[j] = accumulate ? ci[j] + s : s;
            }
        }
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

/// <summary>One multithreaded product: C split by rows or columns into parts, one per thread.</summary>
/// <remarks>
/// One per calling thread (see <see cref="KernelScratch"/>), filled in only while its caller holds the pool's claim
/// and cleared when the product ends: it keeps no context, finisher or operand between calls.
/// </remarks>
internal sealed unsafe class GemmJob<T> : WorkItem where T : unmanaged, IFloatingPointIeee754<T>
{
    private ComputeContext? _context;
    private bool _transA, _transB, _accumulate, _splitN;
    private int _m, _n, _k, _units, _unit, _chunks;
    private long _claimed;
    private IGemmBlockFinish? _finish;
    private T* _a, _b, _c;
    private nint _lda, _ldb, _ldc;

    /// <summary>Chooses the split of an m×n product in up to <paramref name="parts"/> parts; false when it cannot be split.</summary>
    public static bool Split(GemmPath path, int m, int n, bool rowSplit, int parts, out bool splitN, out int units, out int actual)
    {
        var (mr, nr) = Gemm.Tile<T>(path);
        int unitsN = (n + nr - 1) / nr, unitsM = (m + mr - 1) / mr;
        // Each thread packs the whole of the operand it shares: split along n when A (m×k) is the smaller one,
        // unless the caller asks for row blocks of C (whose next reader works on row blocks, on the same threads).
        splitN = (!rowSplit && n >= m) ? unitsN >= 2 : unitsM < 2;
        units = splitN ? unitsN : unitsM;
        actual = Math.Min(parts, units);
        return actual >= 2;
    }

    /// <summary>Fills in the job as <see cref="Split"/> chose. Only the owner of the pool's claim may call it.</summary>
    public void Prepare(ComputeContext context, bool transA, bool transB, int m, int n, int k,
        T* a, nint lda, T* b, nint ldb, T* c, nint ldc, bool accumulate, IGemmBlockFinish? finish, bool splitN, int units, int actual)
    {
        var (mr, nr) = Gemm.Tile<T>(context.GemmPath);
        _context = context;
        _transA = transA; _transB = transB; _accumulate = accumulate;
        _m = m; _n = n; _k = k; _a = a; _b = b; _c = c; _lda = lda; _ldb = ldb; _ldc = ldc;
        _splitN = splitN; _units = units; _unit = splitN ? nr : mr; _finish = finish;
        // Chunks are taken dynamically: when a worker starts late (its core is busy) the caller takes its chunk too.
        // Each chunk re-packs the shared operand, so one chunk per thread measured best (more only added packing).
        _chunks = Math.Min(Math.Min(units, actual * context.Tuning.ChunksPerThread), 64);
        _claimed = 0;
    }

    /// <summary>Drops the references the job held for one product.</summary>
    public void Clear()
    {
        _context = null;
        _finish = null;
        _a = _b = _c = null;
    }

    public override void Execute(int part, int parts)
    {
        // Its own chunk first: thread p then writes the same block of C every call, and the next op that splits the
        // same way on the same threads (the optimizer over a gradient) finds it in its own cache. Then any chunk left.
        long ran = 0;
        if (part < _chunks && Claim(part)) { RunChunk(part); ran |= 1L << part; }
        for (int c = 0; c < _chunks; c++)
            if (Claim(c)) { RunChunk(c); ran |= 1L << c; }
        // Every thread sizes its packing buffers for every chunk, run or not: a thread that started late finds some or
        // all of the chunks taken, and would otherwise grow its buffers the first time it does run one, in the middle
        // of a warm run (measured: ~700 KB, then ~170 KB, in 50 warm 2-thread steps of full test runs). Arithmetic and
        // compares once warm.
        for (int c = 0; c < _chunks; c++)
            if ((ran & (1L << c)) == 0) ReserveChunk(c);
    }

    private void ReserveChunk(int chunk)
    {
        int u0 = (int)((long)_units * chunk / _chunks), u1 = (int)((long)_units * (chunk + 1) / _chunks);
        if (_splitN)
        {
            int j0 = u0 * _unit, j1 = Math.Min(_n, u1 * _unit);
            if (j1 > j0) Gemm.Reserve<T>(_context!, _transB, _m, j1 - j0, _k);
        }
        else
        {
            int i0 = u0 * _unit, i1 = Math.Min(_m, u1 * _unit);
            if (i1 > i0) Gemm.Reserve<T>(_context!, _transB, i1 - i0, _n, _k);
        }
    }

    private bool Claim(int chunk) => (Interlocked.Or(ref _claimed, 1L << chunk) & (1L << chunk)) == 0;

    private void RunChunk(int chunk)
    {
        int u0 = (int)((long)_units * chunk / _chunks), u1 = (int)((long)_units * (chunk + 1) / _chunks);
        if (_splitN)
        {
            int j0 = u0 * _unit, j1 = Math.Min(_n, u1 * _unit);
            if (j1 <= j0) return;
            T* b = _transB ? _b + j0 * _ldb : _b + j0;
            Gemm.Serial(_context!, _transA, _transB, _m, j1 - j0, _k, _a, _lda, b, _ldb, _c + j0, _ldc, _accumulate);
            _finish?.Finish(0, _m, j0, j1);
        }
        else
        {
            int i0 = u0 * _unit, i1 = Math.Min(_m, u1 * _unit);
            if (i1 <= i0) return;
            T* a = _transA ? _a + i0 : _a + i0 * _lda;
            Gemm.Serial(_context!, _transA, _transB, i1 - i0, _n, _k, a, _lda, _b, _ldb, _c + i0 * _ldc, _ldc, _accumulate);
            _finish?.Finish(i0, i1, 0, _n);
        }
    }
}
