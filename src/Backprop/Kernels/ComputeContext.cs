using System.Runtime.Intrinsics.X86;

namespace Backprop.Kernels;

/// <summary>Which micro-kernel family <see cref="Gemm"/> uses.</summary>
public enum GemmPath
{
    /// <summary>The best the CPU supports: AVX-512, else AVX2+FMA, else portable.</summary>
    Auto,
    /// <summary>AVX-512F micro-kernels (8×2 vector register tile); needs a CPU with AVX-512F.</summary>
    Avx512,
    /// <summary>AVX2 + FMA micro-kernels (6×2 vector register tile); needs a CPU with both.</summary>
    Avx2,
    /// <summary>Portable <see cref="System.Numerics.Vector{T}"/> micro-kernels (4×2 tile): run on any CPU.</summary>
    Portable,
}

/// <summary>
/// Size thresholds and cache blocking of the kernels: measured values, not semantics (any setting gives the same
/// results up to the split of work between threads, which is bit-exact). Immutable: a context is given one.
/// </summary>
public sealed record KernelTuning
{
    /// <summary>The values measured on the reference machine (2-core Zen 4, 32 KiB L1d, 1 MiB L2).</summary>
    public static KernelTuning Default { get; } = new();

    /// <summary>Depth budget of a packed panel, kc·NR·sizeof(T) bytes: the kc×NR B micro-panel lives in L1.</summary>
    /// <remarks>
    /// A deep kc (512 for float 8×32) means C tiles are loaded and stored less often; the A block stays small so it
    /// stays in L2 next to B. On this Zen 4 kc = 256…784 measured within 2% on the training shapes, and 512 was best
    /// at n = 1024 among 256/384/512.
    /// </remarks>
    public int KcBytes { get; init; } = 512 * 4 * 32;

    /// <summary>Bytes of the mc×kc packed A block, which lives in L2.</summary>
    public int McBytes { get; init; } = 192 * 1024;

    /// <summary>Columns of the kc×nc packed B block, which lives in L3.</summary>
    public int Nc { get; init; } = 4096;

    /// <summary>Below this many rows B is read in place (not packed) when it is not transposed.</summary>
    public int DirectBMaxRows { get; init; } = 48;

    /// <summary>Products with at most this many multiply-adds use the plain loop.</summary>
    public long TinyMacs { get; init; } = 512;

    /// <summary>A·Bᵀ with at most this many output columns runs as in-place dot products (no packing).</summary>
    public int NarrowDotMaxN { get; init; } = 16;

    /// <summary>Minimum multiply-adds per thread before a product is split across the pool.</summary>
    public long MinMacsPerThread { get; init; } = 1L << 19;

    /// <summary>Chunks of a split product per participating thread (1 measured best on the 2-core Zen 4 under load).</summary>
    public int ChunksPerThread { get; init; } = 1;

    /// <summary>Below this many values per thread a row gather (<see cref="RowGather"/>) runs on the caller alone.</summary>
    public int GatherMinValuesPerThread { get; init; } = 1 << 14;

    /// <summary>Throws for values the kernels cannot run with (the others are clamped where they are used).</summary>
    internal void Validate()
    {
        // Divisors of the work split and counts of its chunks: below 1, a product would divide by zero or go uncomputed.
        if (MinMacsPerThread < 1) throw new ArgumentOutOfRangeException(nameof(MinMacsPerThread), MinMacsPerThread, "must be at least 1");
        if (ChunksPerThread < 1) throw new ArgumentOutOfRangeException(nameof(ChunksPerThread), ChunksPerThread, "must be at least 1");
        if (GatherMinValuesPerThread < 1) throw new ArgumentOutOfRangeException(nameof(GatherMinValuesPerThread), GatherMinValuesPerThread, "must be at least 1");
    }
}

/// <summary>
/// What the kernels run on: a thread count with its own worker pool, the kernel tuning and the GEMM micro-kernel
/// family. A tape, a trainer or a model's predict is given one; <see cref="Default"/> (all cores, the best kernels)
/// serves whoever is not. Two contexts share nothing, so two models training at once on two contexts do not
/// interfere, and each gets the bits it would get alone.
/// </summary>
/// <remarks>
/// Results depend on the element type and the kernel family, not on the thread count or on which thread computes
/// what: a product split across threads is bit-identical to the serial one. A context may be used by several threads
/// at once: one parallel job runs at a time, and a caller that finds the pool busy runs its work on its own thread.
/// Scratch memory (packing buffers, job descriptions) is kept per calling thread, per context.
/// </remarks>
public sealed class ComputeContext : IDisposable
{
    /// <summary>All cores, <see cref="KernelTuning.Default"/>, the best kernels of this CPU. Lives for the process.</summary>
    public static ComputeContext Default { get; } = new();

    private readonly ThreadLocal<KernelScratch> _scratch = new(() => new KernelScratch());

    /// <param name="threads">Threads the kernels may use, the caller included; 0 means all cores; at most <see cref="MaxThreads"/>.</param>
    /// <param name="tuning">Cache blocking and size thresholds; null means <see cref="KernelTuning.Default"/>.</param>
    /// <param name="gemmPath">The GEMM micro-kernel family; <see cref="GemmPath.Auto"/> picks the best this CPU supports.</param>
    public ComputeContext(int threads = 0, KernelTuning? tuning = null, GemmPath gemmPath = GemmPath.Auto)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        if (threads > MaxThreads)
            throw new ArgumentOutOfRangeException(nameof(threads), threads,
                $"{threads} threads is more than the {MaxThreads} a context may use ({Environment.ProcessorCount} cores)");
        if (!IsSupported(gemmPath))
            throw new PlatformNotSupportedException($"this CPU cannot run the {gemmPath} GEMM kernels");
        Threads = threads == 0 ? Environment.ProcessorCount : threads;
        Tuning = tuning ?? KernelTuning.Default;
        Tuning.Validate();
        GemmPath = gemmPath == GemmPath.Auto ? BestGemmPath : gemmPath;
        Pool = new WorkerPool();
    }

    /// <summary>
    /// The most threads a context may be given: 4 per core, and at least 64 (so that oversubscribed runs still work
    /// on small machines). Each is a dedicated thread with its own stack and packing buffers; more only contend.
    /// </summary>
    public static int MaxThreads => Math.Max(64, 4 * Environment.ProcessorCount);

    /// <summary>Threads the kernels may use, the calling thread included (at least 1).</summary>
    public int Threads { get; }

    /// <summary>The size thresholds and cache blocking of this context's kernels (<see cref="KernelTuning.Default"/> unless given).</summary>
    public KernelTuning Tuning { get; }

    /// <summary>The GEMM micro-kernel family in use (never <see cref="GemmPath.Auto"/>).</summary>
    public GemmPath GemmPath { get; }

    /// <summary>The family <see cref="GemmPath.Auto"/> resolves to on this CPU.</summary>
    public static GemmPath BestGemmPath =>
        Avx512F.IsSupported ? GemmPath.Avx512 :
        Fma.IsSupported && Avx2.IsSupported ? GemmPath.Avx2 : GemmPath.Portable;

    /// <summary>Whether this CPU can run a GEMM kernel family.</summary>
    public static bool IsSupported(GemmPath path) => path switch
    {
        GemmPath.Avx512 => Avx512F.IsSupported,
        GemmPath.Avx2 => Fma.IsSupported && Avx2.IsSupported,
        _ => true,
    };

    /// <summary>This context's worker threads (created when a job is first split, ended by <see cref="Dispose"/>).</summary>
    internal WorkerPool Pool { get; }

    /// <summary>The calling thread's scratch memory for this context (after <see cref="Dispose"/>, a new one each time).</summary>
    internal KernelScratch Scratch
    {
        get
        {
            try { return _scratch.Value!; }
            catch (ObjectDisposedException) { return new KernelScratch(); }
        }
    }

    /// <summary>
    /// Bytes the worker threads allocated on the managed heap while running jobs that the calling thread submitted:
    /// the worker-thread counterpart of <see cref="GC.GetAllocatedBytesForCurrentThread"/>, for zero-allocation checks.
    /// </summary>
    public long WorkerAllocatedBytesForCurrentThread => Pool.AllocatedBytesForCurrentThread;

    /// <summary>
    /// Ends the worker threads and frees every thread's scratch memory (the pinned packing buffers). Call it when
    /// nothing runs on the context any more; work submitted afterwards runs on the calling thread alone (with the same
    /// results, and scratch allocated per call). <see cref="Default"/> is never disposed: this does nothing on it.
    /// </summary>
    public void Dispose()
    {
        if (ReferenceEquals(this, Default)) return;
        Pool.Dispose();
        // A thread inside a product keeps the scratch it already holds; its next call gets a fresh one.
        _scratch.Dispose();
        GC.SuppressFinalize(this);
    }

    // Nothing the context lends out refers back to it once a call returns: the workers reference their pool, and the
    // per-thread scratch (held by each thread that ran a product) holds no context. So a context dropped without
    // Dispose becomes unreachable, and this ends its threads; its scratch goes with its thread-local store.
    // (The pool is null when the constructor threw.)
    /// <summary>Ends the worker threads of a context that was dropped without <see cref="Dispose"/>.</summary>
    ~ComputeContext()
    {
        if (Pool is { } pool) pool.Dispose();
    }

    /// <summary>The thread count and GEMM kernel family, e.g. "2 threads, Avx512 GEMM kernels".</summary>
    public override string ToString() => $"{Threads} threads, {GemmPath} GEMM kernels";
}
