using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;

namespace Backprop.Distributed;

/// <summary>MPI is not usable: not started by mpirun, or libmpi.so.40 is missing. The message is one line that says what to do.</summary>
public sealed class MpiUnavailableException(string message) : Exception(message);

/// <summary>
/// The collective of the processes mpirun started (MPI_COMM_WORLD), over Open MPI 4.x's libmpi.so.40 called by P/Invoke
/// through function pointers. Open MPI's handles are the addresses of exported globals (MPI_COMM_WORLD is
/// &amp;ompi_mpi_comm_world, MPI_FLOAT &amp;ompi_mpi_float, MPI_SUM &amp;ompi_mpi_op_sum), read with
/// <see cref="NativeLibrary.GetExport"/>. MPI is initialised once per process, on a thread of its own, with
/// MPI_THREAD_SERIALIZED (later calls come from another thread than the one that initialised MPI, one at a time; the
/// kernels' worker threads never call MPI). MPI_Init takes about 50 ms in a C program on this project's machine (Open MPI
/// 4.1.4, 2 ranks) and about 110 ms in a rank of `backprop train`, mostly waiting for mpirun and the other ranks: where the
/// node has cores to spare the caller spends it loading its data, and the first collective call waits for the rest;
/// otherwise the constructor waits for it (see <see cref="CoreToSpare"/>). The rank and size are read from mpirun's
/// environment, so they are known at once. Dispose finalises MPI.
/// </summary>
public sealed unsafe partial class MpiCollective : ICollective
{
    /// <summary>The shared library loaded: Open MPI 4.x's soname (the Debian packages openmpi-bin and libopenmpi-dev install it).</summary>
    public const string Library = "libmpi.so.40";
    private const int Success = 0, ThreadSerialized = 2;
    private static readonly nint InPlace = 1;   // MPI_IN_PLACE is (void*)1 in Open MPI

    private readonly nint _lib, _world, _float, _double, _byte, _sum;
    private readonly delegate* unmanaged<nint, int, nint, int, nint, int> _bcast;
    private readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> _allreduce;
    private readonly delegate* unmanaged<nint, int> _barrier;
    private readonly delegate* unmanaged<nint, int, nint, int, int, nint, int, nint, int, int, nint, nint, int> _sendrecv;
    private readonly delegate* unmanaged<nint, int, int> _abort;
    private readonly delegate* unmanaged<int> _finalize;
    private readonly delegate* unmanaged<int*, int> _initialized;
    private readonly delegate* unmanaged<int*, nint*, int, int*, int> _initThread;
    private readonly delegate* unmanaged<nint, int*, int> _commRank, _commSize;
    private readonly Thread _initialising;
    private Exception? _initError;
    private volatile bool _ready;
    private bool _disposed;

    /// <summary>Whether this process was started by Open MPI's mpirun (it sets OMPI_COMM_WORLD_SIZE).</summary>
    public static bool UnderMpirun => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null
        || Environment.GetEnvironmentVariable("PMIX_RANK") is not null;

    /// <summary>
    /// Starts initialising MPI and joining MPI_COMM_WORLD, on a thread of its own (the first collective call waits for
    /// it). Throws <see cref="MpiUnavailableException"/> when not under mpirun or when libmpi.so.40 cannot be loaded.
    /// </summary>
    public MpiCollective() : this(Library) { }

    /// <summary>As <see cref="MpiCollective()"/> with another library file (tests name a missing one).</summary>
    internal MpiCollective(string library)
    {
        if (!NativeLibrary.TryLoad(library, out _lib))
            throw new MpiUnavailableException($"cannot load {library} (Open MPI 4): install the Debian packages openmpi-bin and libopenmpi-dev");
        if (!UnderMpirun)
            throw new MpiUnavailableException("distributed training runs under mpirun, e.g. mpirun -np 2 backprop train --distributed");
        _world = Export("ompi_mpi_comm_world");
        _float = Export("ompi_mpi_float");
        _double = Export("ompi_mpi_double");
        _byte = Export("ompi_mpi_byte");
        _sum = Export("ompi_mpi_op_sum");
        var version = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_library_version");
        _bcast = (delegate* unmanaged<nint, int, nint, int, nint, int>)Export("MPI_Bcast");
        _allreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        _sendrecv = (delegate* unmanaged<nint, int, nint, int, int, nint, int, nint, int, int, nint, nint, int>)Export("MPI_Sendrecv");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        _initThread = (delegate* unmanaged<int*, nint*, int, int*, int>)Export("MPI_Init_thread");
        _commRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");

        var buffer = stackalloc byte[256];
        int length = 0;
        Transport = version(buffer, &length) == Success   // MPI_Get_library_version may be called before MPI_Init
            ? "MPI (" + System.Text.Encoding.ASCII.GetString(buffer, Math.Clamp(length, 0, 256)).Split(',')[0].Trim() + ")"
            : "MPI";
        // mpirun tells every process its rank and the world's size, so both are known before MPI_Init returns
        if (int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_RANK"), out var envRank) && envRank >= 0
            && int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE"), out var envSize) && envSize > envRank)
            (_rank, _size) = (envRank, envSize);
        UseSharedMemoryLayerOnOneNode();
        _initialising = new Thread(Initialise) { IsBackground = true, Name = "MPI_Init" };
        _initialising.Start();
        if (_rank < 0 || !CoreToSpare()) Join();
    }

    /// <summary>
    /// Whether this node has more processors than ranks, so that MPI_Init can run beside the caller's own start (its
    /// data loading). With none to spare it runs first: while it waits for mpirun and the other ranks its progress
    /// loop spins, and beside the loading it took the rank's one core from it. 2 ranks on 2 cores, a 1-epoch MNIST run,
    /// 3 pairs: data loaded and model built 664–732 ms after the start with MPI_Init first (about 110 ms of it),
    /// against 726–855 ms beside it; the whole run 80–120 ms shorter.
    /// </summary>
    private static bool CoreToSpare() =>
        !int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE"), out int local) || local < Environment.ProcessorCount;

    /// <summary>
    /// When every rank runs on this node (mpirun's OMPI_COMM_WORLD_LOCAL_SIZE equals the world's size) and nobody chose
    /// a message layer (OMPI_MCA_pml, OMPI_MCA_mtl), picks Open MPI's ob1, which runs over shared memory (vader). Left
    /// to itself, MPI_Init also tries the cm layer, probing the network libraries of its MTLs (PSM, PSM2, libfabric):
    /// 0.28 s of MPI_Init in C against 0.09 with ob1, for 2 ranks on this project's machine, and 0.6 s of a 2-rank
    /// `backprop train`'s wall clock, spent before any message could use a network that one node does not have.
    /// Across nodes nothing is set, and Open MPI picks the network's layer as usual.
    /// </summary>
    private static void UseSharedMemoryLayerOnOneNode()
    {
        bool oneNode = Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE") is { } local
            && local == Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE");
        if (oneNode && Environment.GetEnvironmentVariable("OMPI_MCA_pml") is null && Environment.GetEnvironmentVariable("OMPI_MCA_mtl") is null)
            _ = setenv("OMPI_MCA_pml", "ob1", 0);   // the process's own environment, which MPI_Init reads (Environment.SetEnvironmentVariable does not write it)
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    /// <summary>MPI_Init_thread, on the thread that <see cref="Join"/> waits for; an error is kept for the first call.</summary>
    private void Initialise()
    {
        try
        {
            int flag = 0;
            Check(_initialized(&flag), "MPI_Initialized");
            if (flag == 0)
            {
                int provided = 0, argc = 0;
                nint argv = 0;
                Check(_initThread(&argc, &argv, ThreadSerialized, &provided), "MPI_Init_thread");
                if (provided < ThreadSerialized)
                    throw new CollectiveException($"MPI_Init_thread provides thread level {provided}; MPI_THREAD_SERIALIZED ({ThreadSerialized}) is needed, " +
                        "as MPI is initialised on another thread than the one that calls it");
            }
            int r = 0, n = 0;
            Check(_commRank(_world, &r), "MPI_Comm_rank");
            Check(_commSize(_world, &n), "MPI_Comm_size");
            if (_rank >= 0 && (r != _rank || n != _size))
                throw new CollectiveException($"MPI says rank {r} of {n}, but mpirun's environment said rank {_rank} of {_size}");
            (_rank, _size) = (r, n);
        }
        catch (Exception e) { _initError = e; }
    }

    /// <summary>Waits until MPI is initialised; throws what initialising it threw.</summary>
    /// <exception cref="CollectiveException">MPI_Init failed.</exception>
    private void Join()
    {
        if (_ready) return;
        _initialising.Join();
        if (_initError is not null)
            throw _initError as CollectiveException ?? new CollectiveException($"MPI_Init failed: {_initError.Message}", _initError);
        _ready = true;
    }

    private nint Export(string name) =>
        NativeLibrary.TryGetExport(_lib, name, out var p) ? p
            : throw new MpiUnavailableException($"{Library} has no {name}: an Open MPI 4 library is needed (Debian: openmpi-bin, libopenmpi-dev)");

    private void Check(int code, string call)
    {
        if (code != Success) throw new CollectiveException($"rank {_rank}: {call} failed with MPI error {code}");
    }

    private int _rank = -1, _size = -1;

    /// <inheritdoc/>
    public int Rank => _rank;
    /// <inheritdoc/>
    public int Size => _size;
    /// <inheritdoc/>
    public string Transport { get; }

    /// <summary>MPI counts are ints: larger spans go in pieces.</summary>
    private const int MaxCount = 1 << 30;

    /// <summary>Copies the root's <paramref name="data"/> into every rank's (MPI_Bcast of the bytes, in pieces of at most 2³⁰ bytes).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not a rank of the job.</exception>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void Broadcast<T>(Span<T> data, int root = 0) where T : unmanaged
    {
        if ((uint)root >= (uint)Size) throw new ArgumentOutOfRangeException(nameof(root), $"root {root} is not a rank of a group of {Size}");
        Join();
        var bytes = MemoryMarshal.AsBytes(data);
        fixed (byte* p = bytes)
            for (long offset = 0; offset < bytes.Length; offset += MaxCount)
            {
                int count = (int)Math.Min(MaxCount, bytes.Length - offset);
                Check(_bcast((nint)(p + offset), count, _byte, root, _world), "MPI_Bcast");
            }
    }

    /// <summary>
    /// Replaces <paramref name="data"/> by the element-wise sum over all ranks (in-place MPI_Allreduce with MPI_SUM, in
    /// pieces of at most 2³⁰ elements). The order of the additions is MPI's; Open MPI gives every rank the same result.
    /// </summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void AllReduceSum<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T>
    {
        nint type = typeof(T) == typeof(float) ? _float
            : typeof(T) == typeof(double) ? _double
            : throw new NotSupportedException($"all-reduce of {typeof(T).Name}: float and double only");
        Join();
        fixed (T* p = data)
            for (long offset = 0; offset < data.Length; offset += MaxCount)
            {
                int count = (int)Math.Min(MaxCount, data.Length - offset);
                Check(_allreduce(InPlace, (nint)(p + offset), count, type, _sum, _world), "MPI_Allreduce");
            }
    }

    /// <inheritdoc/>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void Barrier()
    {
        Join();
        Check(_barrier(_world), "MPI_Barrier");
    }

    // The block operations are rings of MPI_Sendrecv (each rank sends to the next and receives from the previous,
    // N − 1 steps of one block each way): for 2 ranks, one exchange of half the data. Open MPI 4.1's own
    // MPI_Reduce_scatter and MPI_Allgatherv took 0.159 + 0.053 ms for the reference model's 2.14 MB on 2 ranks, more
    // than its MPI_Allreduce (0.133 ms in the same run), which made a sharded optimizer step cost more than it saved;
    // the rings take 0.081 + 0.053 ms (docs/distributed.md).

    private byte[] _received = [];

    /// <summary>True: the rings below cost what MPI_Allreduce costs (measured on 2 ranks, 2.14 MB: 0.081 + 0.053 ms
    /// against 0.133 ms), so a sharded optimizer step saves the rest of the update.</summary>
    public bool ShardingPays => true;

    /// <inheritdoc/>
    /// <remarks>
    /// A ring: at step s (0 to N − 2) rank r sends its running sum of block r − s − 1 to rank r + 1 and adds the block
    /// r − s − 2 that rank r − 1 sends to its own (blocks and ranks modulo N), so that after N − 1 steps block r, complete,
    /// is on rank r. Each block's sum is formed in a fixed order (its owner's value last), so a given N gives the same
    /// bits run after run; every rank gets the one rank's result through <see cref="AllGather{T}"/>.
    /// </remarks>
    /// <exception cref="ArgumentException">The counts do not cut the data into one block a rank.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void ReduceScatterSum<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged, IFloatingPointIeee754<T>
    {
        CollectiveBlocks.Offset(data.Length, counts, Size, Rank);
        nint type = typeof(T) == typeof(float) ? _float
            : typeof(T) == typeof(double) ? _double
            : throw new NotSupportedException($"reduce-scatter of {typeof(T).Name}: float and double only");
        Join();
        if (Size == 1) return;
        Span<int> starts = Size <= 256 ? stackalloc int[Size] : new int[Size];
        int largest = Starts(counts, starts);
        if (_received.Length < largest * sizeof(T)) _received = new byte[largest * sizeof(T)];
        int next = (Rank + 1) % Size, previous = (Rank + Size - 1) % Size;
        fixed (T* p = data)
        fixed (byte* q = _received)
        {
            var received = new Span<T>(q, largest);
            for (int step = 0; step < Size - 1; step++)
            {
                int sent = Modulo(Rank - step - 1), got = Modulo(Rank - step - 2);
                Check(_sendrecv((nint)(p + starts[sent]), counts[sent], type, next, 0, (nint)q, counts[got], type, previous, 0, _world, 0), "MPI_Sendrecv");
                var block = data.Slice(starts[got], counts[got]);
                AddTo(received[..counts[got]], block);
            }
        }
    }

    /// <inheritdoc/>
    /// <remarks>A ring of MPI_Sendrecv: at step s rank r passes block r − s on to rank r + 1 and receives block r − s − 1
    /// from rank r − 1, in place (blocks of at most 2³¹ − 1 bytes).</remarks>
    /// <exception cref="ArgumentException">The counts do not cut the data into one block a rank, or a block is too large.</exception>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void AllGather<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged
    {
        CollectiveBlocks.Offset(data.Length, counts, Size, Rank);
        Join();
        if (Size == 1) return;
        Span<int> starts = Size <= 256 ? stackalloc int[Size] : new int[Size];
        int largest = Starts(counts, starts);
        if ((long)largest * sizeof(T) > int.MaxValue) throw new ArgumentException($"all-gather of blocks of {(long)largest * sizeof(T)} bytes: at most {int.MaxValue}", nameof(data));
        int next = (Rank + 1) % Size, previous = (Rank + Size - 1) % Size;
        fixed (T* p = data)
            for (int step = 0; step < Size - 1; step++)
            {
                int sent = Modulo(Rank - step), got = Modulo(Rank - step - 1);
                Check(_sendrecv((nint)(p + starts[sent]), counts[sent] * sizeof(T), _byte, next, 0,
                    (nint)(p + starts[got]), counts[got] * sizeof(T), _byte, previous, 0, _world, 0), "MPI_Sendrecv");
            }
    }

    /// <summary>
    /// <paramref name="sum"/>[i] = <paramref name="values"/>[i] + <paramref name="sum"/>[i], in vector registers.
    /// TensorPrimitives.Add took 124 µs for a block of 268,000 floats here (its non-temporal stores for long spans send
    /// the sum out to memory), this loop 29 µs.
    /// </summary>
    private static void AddTo<T>(ReadOnlySpan<T> values, Span<T> sum) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0, n = sum.Length;
        ref T x = ref MemoryMarshal.GetReference(values);
        ref T y = ref MemoryMarshal.GetReference(sum);
        if (Vector512.IsHardwareAccelerated && Vector512<T>.IsSupported)
            for (; i + Vector512<T>.Count <= n; i += Vector512<T>.Count)
                Vector512.StoreUnsafe(Vector512.LoadUnsafe(ref x, (nuint)i) + Vector512.LoadUnsafe(ref y, (nuint)i), ref y, (nuint)i);
        else if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
            for (; i + Vector256<T>.Count <= n; i += Vector256<T>.Count)
                Vector256.StoreUnsafe(Vector256.LoadUnsafe(ref x, (nuint)i) + Vector256.LoadUnsafe(ref y, (nuint)i), ref y, (nuint)i);
        for (; i < n; i++) sum[i] = values[i] + sum[i];
    }

    private int Modulo(int block) => ((block % Size) + Size) % Size;

    /// <summary>Fills <paramref name="starts"/> with where each block begins; returns the largest block's count.</summary>
    private static int Starts(ReadOnlySpan<int> counts, Span<int> starts)
    {
        int at = 0, largest = 0;
        for (int r = 0; r < counts.Length; r++)
        {
            starts[r] = at;
            at += counts[r];
            largest = Math.Max(largest, counts[r]);
        }
        return largest;
    }

    /// <summary>Ends every process of the job at once (MPI_Abort): what a rank that cannot go on calls, so that no rank waits for it.</summary>
    public void Abort(int exitCode)
    {
        if (_finalizing is not null) return;   // MPI_Abort may not follow MPI_Finalize; the other ranks are past their last call
        _initialising.Join();
        if (_initError is null) _abort(_world, exitCode);
    }

    /// <summary>
    /// Starts MPI_Finalize on a thread of its own, for a process that has made its last MPI call but has work of its own
    /// left (rank 0 writing the model): the ranks' finalisation handshake then overlaps that work instead of following
    /// it (MPI_Finalize takes about 50 ms here, mostly waiting for mpirun and the other ranks). <see cref="Dispose"/>
    /// waits for it. No MPI call may follow; <see cref="Abort"/> then does nothing.
    /// </summary>
    public void BeginFinalize()
    {
        if (_disposed || _finalizing is not null) return;
        _finalizing = new Thread(() =>
        {
            _initialising.Join();
            if (_initError is null) _finalize();
        }) { IsBackground = true, Name = "MPI_Finalize" };
        _finalizing.Start();
    }

    private Thread? _finalizing;

    /// <summary>Finalises MPI (MPI_Finalize), once, or waits for <see cref="BeginFinalize"/> to; every rank must call it, and no MPI call may follow in this process.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_finalizing is not null)
        {
            _finalizing.Join();
            return;
        }
        _initialising.Join();
        if (_initError is null) _finalize();
    }
}
