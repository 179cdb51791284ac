using System.Numerics;
using System.Runtime.InteropServices;

namespace Backprop.Distributed;

/// <summary>MPI is not usable: not started by mpirun, or libmpi.so.40 is missing. The message is one line that says what to do.</summary>
public sealed class MpiUnavailableException(string message) : Exception(message);

/// <summary>
/// The collective of the processes mpirun started (MPI_COMM_WORLD), over Open MPI 4.x's libmpi.so.40 called by P/Invoke
/// through function pointers. Open MPI's handles are the addresses of exported globals (MPI_COMM_WORLD is
/// &amp;ompi_mpi_comm_world, MPI_FLOAT &amp;ompi_mpi_float, MPI_SUM &amp;ompi_mpi_op_sum), read with
/// <see cref="NativeLibrary.GetExport"/>. MPI is initialised once per process with MPI_THREAD_FUNNELED: only the thread
/// that made this object calls MPI (the kernels' worker threads never do). Dispose finalises MPI.
/// </summary>
public sealed unsafe class MpiCollective : ICollective
{
    /// <summary>The shared library loaded: Open MPI 4.x's soname (the Debian packages openmpi-bin and libopenmpi-dev install it).</summary>
    public const string Library = "libmpi.so.40";
    private const int Success = 0, ThreadFunneled = 1;
    private static readonly nint InPlace = 1;   // MPI_IN_PLACE is (void*)1 in Open MPI

    private readonly nint _lib, _world, _float, _double, _byte, _sum;
    private readonly delegate* unmanaged<nint, int, nint, int, nint, int> _bcast;
    private readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> _allreduce;
    private readonly delegate* unmanaged<nint, int> _barrier;
    private readonly delegate* unmanaged<nint, nint, int*, nint, nint, nint, int> _reduceScatter;
    private readonly delegate* unmanaged<nint, int, nint, nint, int*, int*, nint, nint, int> _allgatherv;
    private readonly delegate* unmanaged<nint, int, int> _abort;
    private readonly delegate* unmanaged<int> _finalize;
    private bool _disposed;

    /// <summary>Whether this process was started by Open MPI's mpirun (it sets OMPI_COMM_WORLD_SIZE).</summary>
    public static bool UnderMpirun => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null
        || Environment.GetEnvironmentVariable("PMIX_RANK") is not null;

    /// <summary>
    /// Initialises MPI and joins MPI_COMM_WORLD. Throws <see cref="MpiUnavailableException"/> when not under mpirun or
    /// when libmpi.so.40 cannot be loaded.
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
        var initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        var initThread = (delegate* unmanaged<int*, nint*, int, int*, int>)Export("MPI_Init_thread");
        var rank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        var size = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        var version = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_library_version");
        _bcast = (delegate* unmanaged<nint, int, nint, int, nint, int>)Export("MPI_Bcast");
        _allreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        _reduceScatter = (delegate* unmanaged<nint, nint, int*, nint, nint, nint, int>)Export("MPI_Reduce_scatter");
        _allgatherv = (delegate* unmanaged<nint, int, nint, nint, int*, int*, nint, nint, int>)Export("MPI_Allgatherv");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");

        int flag = 0;
        Check(initialized(&flag), "MPI_Initialized");
        if (flag == 0)
        {
            int provided = 0, argc = 0;
            nint argv = 0;
            Check(initThread(&argc, &argv, ThreadFunneled, &provided), "MPI_Init_thread");
        }
        int r = 0, n = 0;
        Check(rank(_world, &r), "MPI_Comm_rank");
        Check(size(_world, &n), "MPI_Comm_size");
        Rank = r;
        Size = n;
        var buffer = stackalloc byte[256];
        int length = 0;
        Transport = version(buffer, &length) == Success
            ? "MPI (" + System.Text.Encoding.ASCII.GetString(buffer, Math.Clamp(length, 0, 256)).Split(',')[0].Trim() + ")"
            : "MPI";
    }

    private nint Export(string name) =>
        NativeLibrary.TryGetExport(_lib, name, out var p) ? p
            : throw new MpiUnavailableException($"{Library} has no {name}: an Open MPI 4 library is needed (Debian: openmpi-bin, libopenmpi-dev)");

    private void Check(int code, string call)
    {
        if (code != Success) throw new CollectiveException($"rank {Rank}: {call} failed with MPI error {code}");
    }

    /// <inheritdoc/>
    public int Rank { get; }
    /// <inheritdoc/>
    public int Size { get; }
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
        fixed (T* p = data)
            for (long offset = 0; offset < data.Length; offset += MaxCount)
            {
                int count = (int)Math.Min(MaxCount, data.Length - offset);
                Check(_allreduce(InPlace, (nint)(p + offset), count, type, _sum, _world), "MPI_Allreduce");
            }
    }

    /// <inheritdoc/>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void Barrier() => Check(_barrier(_world), "MPI_Barrier");

    /// <inheritdoc/>
    /// <remarks>In-place MPI_Reduce_scatter with MPI_SUM, which leaves the sum at the start of the buffer; it is then
    /// moved to this rank's block.</remarks>
    /// <exception cref="ArgumentException">The counts do not cut the data into one block a rank.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void ReduceScatterSum<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int offset = CollectiveBlocks.Offset(data.Length, counts, Size, Rank);
        nint type = typeof(T) == typeof(float) ? _float
            : typeof(T) == typeof(double) ? _double
            : throw new NotSupportedException($"reduce-scatter of {typeof(T).Name}: float and double only");
        fixed (T* p = data)
        fixed (int* c = counts)
            Check(_reduceScatter(InPlace, (nint)p, c, type, _sum, _world), "MPI_Reduce_scatter");
        if (offset > 0) data[..counts[Rank]].CopyTo(data.Slice(offset, counts[Rank]));
    }

    /// <inheritdoc/>
    /// <remarks>In-place MPI_Allgatherv of the blocks as bytes (at most 2³¹ − 1 bytes in all).</remarks>
    /// <exception cref="ArgumentException">The counts do not cut the data into one block a rank, or the data is too large.</exception>
    /// <exception cref="CollectiveException">MPI returned an error.</exception>
    public void AllGather<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged
    {
        CollectiveBlocks.Offset(data.Length, counts, Size, Rank);
        long bytes = (long)data.Length * sizeof(T);
        if (bytes > int.MaxValue) throw new ArgumentException($"all-gather of {bytes} bytes: at most {int.MaxValue}", nameof(data));
        Span<int> byteCounts = counts.Length <= 256 ? stackalloc int[counts.Length] : new int[counts.Length];
        Span<int> displacements = counts.Length <= 256 ? stackalloc int[counts.Length] : new int[counts.Length];
        int at = 0;
        for (int r = 0; r < counts.Length; r++)
        {
            byteCounts[r] = counts[r] * sizeof(T);
            displacements[r] = at;
            at += byteCounts[r];
        }
        fixed (T* p = data)
        fixed (int* c = byteCounts)
        fixed (int* d = displacements)
            Check(_allgatherv(InPlace, 0, _byte, (nint)p, c, d, _byte, _world), "MPI_Allgatherv");
    }

    /// <summary>Ends every process of the job at once (MPI_Abort): what a rank that cannot go on calls, so that no rank waits for it.</summary>
    public void Abort(int exitCode) => _abort(_world, exitCode);

    /// <summary>Finalises MPI (MPI_Finalize), once; every rank must call it, and no MPI call may follow in this process.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _finalize();
    }
}
