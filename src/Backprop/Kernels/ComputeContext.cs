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
    /// <summary>The values measured on the reference machine (2-core Zen 4, 32 KiB L1d, 1 MiB L2): the blocking where a CPU reports no caches.
    /// Declared before <see cref="Default"/>, which it initialises.</summary>
    public static KernelTuning Fixed { get; } = new();

    /// <summary>
    /// This CPU's blocking: <see cref="FromCaches"/> of the caches it reports (<see cref="CpuCaches.ThisCpu"/>) for its
    /// best GEMM kernels, else <see cref="Fixed"/>.
    /// </summary>
    public static KernelTuning Default { get; } =
        CpuCaches.ThisCpu is { } caches ? FromCaches(caches, ComputeContext.BestGemmPath) : Fixed;

    /// <summary>
    /// The cache blocks of the BLIS analytical model (Low, Igual, Smith, Quintana-Ortí, "Analytical modeling is enough
    /// for high-performance BLIS", ACM TOMS 2016) for the float micro-kernel of <paramref name="path"/>, MR×NR: of the
    /// L1d's W ways one is left to C, the other W − 1 are shared by the streaming A micro-panels and the resident B
    /// micro-panel in proportion MR : NR, so A gets C_A = ⌊(W − 1)/(1 + NR/MR)⌋ ways and kc = C_A·(L1d/W)/(MR·4);
    /// the mc×kc A block takes half of the L2's ways less one for C and those the B micro-panel occupies; the kc×nc B block
    /// takes the per-core L3's ways less one and those of the A block. The other thresholds keep their
    /// <see cref="Fixed"/> values. Only kc changes results (it is where sums are split), so one CPU always gives the
    /// same bits.
    /// </summary>
    /// <remarks>
    /// Zen 5 (48 KiB 12-way L1d, 1 MiB 16-way L2, 32 MiB 16-way L3 for 8 cores): float kc = 256, float64 kc = 192,
    /// an A block of 448 KiB, nc = 3328. This project's Zen 5 VMs report (CPUID 0x80000005/6) an 8-way L2 and no
    /// usable L3: the same kc, a 384 KiB A block and the fixed nc. Measured there against <see cref="Fixed"/> (kc = 512,
    /// A block 192 KiB) in the README's benchmark section: float alike, float64 alike at its own kc (8% slower when
    /// float64 ran at float's kc = 256, which overfills L1; hence the separate <see cref="Float64KcBytes"/>).
    /// </remarks>
    /// <param name="caches">The caches of one core.</param>
    /// <param name="path">The GEMM kernel family whose float tile the blocks are for (<see cref="GemmPath.Auto"/>: this CPU's best).</param>
    public static KernelTuning FromCaches(CpuCaches caches, GemmPath path = GemmPath.Auto)
    {
        ArgumentNullException.ThrowIfNull(caches);
        const int s = sizeof(float);
        path = path == GemmPath.Auto ? ComputeContext.BestGemmPath : path;
        var ((mr, nr), (mr64, nr64)) = path switch
        {
            GemmPath.Avx512 => ((Avx512Kernel<float>.MR, Avx512Kernel<float>.NR), (Avx512Kernel<double>.MR, Avx512Kernel<double>.NR)),
            GemmPath.Avx2 => ((Avx2Kernel<float>.MR, Avx2Kernel<float>.NR), (Avx2Kernel<double>.MR, Avx2Kernel<double>.NR)),
            _ => ((PortableKernel<float>.MR, PortableKernel<float>.NR), (PortableKernel<double>.MR, PortableKernel<double>.NR)),
        };
        // associativity not reported (sysfs may leave it out; AMD's code 0): the common 8-way L1d and 16-way L2/L3
        int w1 = caches.L1dWays >= 2 ? caches.L1dWays : 8, w2 = caches.L2Ways >= 2 ? caches.L2Ways : 16, w3 = caches.L3Ways >= 2 ? caches.L3Ways : 16;
        long set1 = Math.Max(64, caches.L1dBytes / w1), set2 = Math.Max(64, caches.L2Bytes / w2);
        // per element type: the same B micro-panel bytes would give float64's A micro-panel twice float's share of L1
        // (float64 1024³ on Zen 5 at float's kc = 256: 83 GFLOPS against 90 at kc = 512 and 91 at its own kc = 192)
        int Kc(int tileRows, int tileCols, int size)
        {
            int waysA = Math.Max(1, (int)((w1 - 1) / (1 + (double)tileCols / tileRows)));
            return (int)Math.Clamp(waysA * set1 / (tileRows * size) & ~7, 32, 1024);
        }
        int kc = Kc(mr, nr, s), kc64 = Kc(mr64, nr64, sizeof(double));
        long bPanel = (long)kc * nr * s;
        int waysB2 = (int)((bPanel + set2 - 1) / set2);
        // The model keeps the A block in L2 by ways, which an LRU L2 does not do: the B micro-panels streaming from L3
        // and the C tiles evict it. Half of those ways: on this Zen 5 VM (loaded) float64 1024³ at kc = 192 ran
        // median 79 GFLOPS with a 384 KiB A block against 67 with the model's 768 KiB (the fixed 192 KiB: 71 and 76).
        long aBlock = Math.Max(1, (w2 - 1 - waysB2) / 2) * set2;
        int nc = Fixed.Nc;
        if (caches.L3BytesPerCore > 0)
        {
            long set3 = Math.Max(64, caches.L3BytesPerCore / w3);
            int waysA3 = (int)((aBlock + set3 - 1) / set3);
            long bBlock = Math.Max(1, w3 - 1 - waysA3) * set3;
            // one nc serves both element types: size it for the deeper of float's and float64's kc×nc block
            long bytesPerColumn = Math.Max((long)kc * s, (long)kc64 * sizeof(double));
            nc = (int)Math.Clamp(bBlock / bytesPerColumn / nr * nr, nr, 1 << 16);
        }
        return Fixed with
        {
            KcBytes = (int)bPanel, Float64KcBytes = kc64 * nr64 * sizeof(double), McBytes = (int)Math.Min(aBlock, 1 << 30), Nc = nc,
            PrefetchCBytes = caches.L2Bytes > 0 ? caches.L2Bytes : Fixed.PrefetchCBytes,
        };
    }

    /// <summary>Depth budget of a packed panel, kc·NR·sizeof(T) bytes: the kc×NR B micro-panel lives in L1.</summary>
    /// <remarks>
    /// A deep kc (512 for float 8×32) means C tiles are loaded and stored less often; the A block stays small so it
    /// stays in L2 next to B. On this Zen 4 kc = 256…784 measured within 2% on the training shapes, and 512 was best
    /// at n = 1024 among 256/384/512.
    /// </remarks>
    public int KcBytes { get; init; } = 512 * 4 * 32;

    /// <summary>
    /// <see cref="KcBytes"/> for float64 products; null: the same as float's. Float64's tile has half the columns per
    /// row of bytes, so the same B micro-panel bytes come with an A micro-panel twice as large.
    /// </summary>
    public int? Float64KcBytes { get; init; }

    /// <summary>The depth budget of <typeparamref name="T"/>'s products: <see cref="Float64KcBytes"/> or <see cref="KcBytes"/>.</summary>
    internal int KcBytesFor<T>() where T : unmanaged => typeof(T) == typeof(double) && Float64KcBytes is { } b ? b : KcBytes;

    /// <summary>
    /// Above this many bytes of C swept by one depth block (mc·nc values), each tile of C is prefetched while the tile
    /// before it is computed: C then comes from L3 or memory, and the 16 loads of a tile at the end of its kernel
    /// otherwise wait there. <see cref="FromCaches"/> gives the L2's size. Measured on the Zen 5 VM, 1 thread, 8 rounds
    /// alternating in one process (`benchmarks/Backprop.Benchmarks -- pfc`): 2048³ float32 1.05–1.12× the GFLOPS (median
    /// 1.09), 2048³ float64 median 1.01, 1024³ float32 (1.5 MB of C a sweep) median 1.005, 1024³ float64 median 1.01,
    /// the 784-1024-1024-10 batch-256 step 1.003; below the L2's size (the 128-row training products) it is not used.
    /// </summary>
    public long PrefetchCBytes { get; init; } = 1 << 20;

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

    /// <summary>
    /// Bytes of a packed (inference) weight per thread from which a product with it is split across the pool, whatever
    /// its multiply-adds. A product of one or a few rows streams the weight from cache once and does ~1 multiply-add a
    /// weight, so <see cref="MinMacsPerThread"/> would keep it on one thread; split, each core streams half from its own
    /// caches. Measured (`bench infer`, 784-512-512-10, batch 1, 2 threads, Zen 5): see <c>PackedGemm.Run</c>.
    /// </summary>
    public long MinPackedBytesPerThread { get; init; } = 1L << 18;

    /// <summary>Chunks of a split product per participating thread (1 measured best on the 2-core Zen 4 under load).</summary>
    public int ChunksPerThread { get; init; } = 1;

    /// <summary>Below this many values per thread a row gather (<see cref="RowGather"/>) runs on the caller alone.</summary>
    public int GatherMinValuesPerThread { get; init; } = 1 << 14;

    /// <summary>Throws for values the kernels cannot run with (the others are clamped where they are used).</summary>
    internal void Validate()
    {
        // Divisors of the work split and counts of its chunks: below 1, a product would divide by zero or go uncomputed.
        if (MinMacsPerThread < 1) throw new ArgumentOutOfRangeException(nameof(MinMacsPerThread), MinMacsPerThread, "must be at least 1");
        if (MinPackedBytesPerThread < 1) throw new ArgumentOutOfRangeException(nameof(MinPackedBytesPerThread), MinPackedBytesPerThread, "must be at least 1");
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
/// Results depend on the element type, the kernel family and the depth kc of the tuning (derived from the CPU's L1d
/// by <see cref="KernelTuning.Default"/>), not on the thread count or on which thread computes what: a product split
/// across threads is bit-identical to the serial one. A context may be used by several threads
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
