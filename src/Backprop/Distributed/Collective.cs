using System.Numerics;

namespace Backprop.Distributed;

/// <summary>
/// The collective operations data-parallel training needs, among <see cref="Size"/> processes (or threads) of which this
/// is number <see cref="Rank"/>: broadcast, in-place sum all-reduce and barrier. Every member must make the same calls
/// in the same order with the same lengths (as in MPI). Calls are made from one thread per member.
/// </summary>
public interface ICollective : IDisposable
{
    /// <summary>This member's number, 0 to <see cref="Size"/> − 1; rank 0 prints, writes files and is the usual broadcast root.</summary>
    int Rank { get; }
    /// <summary>The number of members in the group, at least 1.</summary>
    int Size { get; }

    /// <summary>What carries the messages, for logs: "MPI (Open MPI 4.1…)", "in-process threads".</summary>
    string Transport { get; }

    /// <summary>Copies <paramref name="data"/> of member <paramref name="root"/> into every member's <paramref name="data"/>.</summary>
    void Broadcast<T>(Span<T> data, int root = 0) where T : unmanaged;

    /// <summary>Replaces every member's <paramref name="data"/> by the element-wise sum over all members (float or double).</summary>
    void AllReduceSum<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Returns once every member has called it.</summary>
    void Barrier();

    /// <summary>
    /// The first half of an all-reduce: every member gives the whole <paramref name="data"/>, cut into consecutive blocks
    /// of <paramref name="counts"/> values (block r is member r's); afterwards this member's own block of
    /// <paramref name="data"/> holds the element-wise sum of that block over all members. The other blocks are left
    /// unspecified. Every member passes the same counts, which add up to the data's length.
    /// </summary>
    void ReduceScatterSum<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>
    /// The second half: every member's own block of <paramref name="data"/> (blocks of <paramref name="counts"/> values,
    /// block r is member r's) is copied into the same place in every member's data.
    /// </summary>
    void AllGather<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged;

    /// <summary>
    /// Whether a <see cref="ReduceScatterSum{T}"/> and an <see cref="AllGather{T}"/> together cost no more than an
    /// <see cref="AllReduceSum{T}"/> of the same data, so that a sharded optimizer step (each member updating only its
    /// own block of the parameters) saves the rest of the update: what data-parallel training then does by default.
    /// False unless the transport says so.
    /// </summary>
    bool ShardingPays => false;
}

/// <summary>Text sent from one member to all, over any <see cref="ICollective"/>: a message every member must print alike.</summary>
public static class CollectiveText
{
    /// <summary>The bytes every member passes, whatever the text's length: a collective call needs the same length everywhere.</summary>
    public const int MaxBytes = 2048;

    /// <summary>
    /// Every member's copy of member <paramref name="root"/>'s <paramref name="text"/> (what the others pass is not read):
    /// its UTF-8, cut at a whole character to fit in <see cref="MaxBytes"/> less the zero that ends it, broadcast.
    /// </summary>
    public static string Broadcast(ICollective group, string? text, int root)
    {
        ArgumentNullException.ThrowIfNull(group);
        Span<byte> message = stackalloc byte[MaxBytes];
        message.Clear();
        if (group.Rank == root && text is not null)
        {
            var chars = text.AsSpan();
            while (System.Text.Encoding.UTF8.GetByteCount(chars) >= MaxBytes) chars = chars[..(chars.Length * 3 / 4)];
            System.Text.Encoding.UTF8.GetBytes(chars, message);
        }
        group.Broadcast(message, root);
        int end = message.IndexOf((byte)0);
        return System.Text.Encoding.UTF8.GetString(end < 0 ? message : message[..end]);
    }
}

/// <summary>Checks of the arguments that every collective's block operations share.</summary>
internal static class CollectiveBlocks
{
    /// <summary>Where member <paramref name="rank"/>'s block starts; throws unless the counts fit the data.</summary>
    public static int Offset(int dataLength, ReadOnlySpan<int> counts, int size, int rank)
    {
        if (counts.Length != size) throw new ArgumentException($"{counts.Length} block counts for a group of {size}", nameof(counts));
        long total = 0;
        int offset = 0;
        for (int r = 0; r < counts.Length; r++)
        {
            if (counts[r] < 0) throw new ArgumentException($"block {r} has a negative count ({counts[r]})", nameof(counts));
            if (r == rank) offset = (int)total;
            total += counts[r];
        }
        if (total != dataLength) throw new ArgumentException($"the blocks hold {total} values but the data has {dataLength}", nameof(counts));
        return offset;
    }
}

/// <summary>The collective of one process alone: every operation leaves the data as it is.</summary>
public sealed class SingleProcess : ICollective
{
    /// <summary>The one instance: a process alone needs no state.</summary>
    public static SingleProcess Instance { get; } = new();
    private SingleProcess() { }
    /// <inheritdoc/>
    public int Rank => 0;
    /// <inheritdoc/>
    public int Size => 1;
    /// <inheritdoc/>
    public string Transport => "one process";
    /// <summary>Leaves <paramref name="data"/> as it is: the only member is the root.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not 0.</exception>
    public void Broadcast<T>(Span<T> data, int root = 0) where T : unmanaged
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), $"root {root} is not a rank of a group of 1");
    }
    /// <summary>Leaves <paramref name="data"/> as it is: the sum over one member.</summary>
    public void AllReduceSum<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T> { }
    /// <inheritdoc/>
    public void Barrier() { }
    /// <inheritdoc/>
    public void ReduceScatterSum<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged, IFloatingPointIeee754<T> =>
        CollectiveBlocks.Offset(data.Length, counts, 1, 0);
    /// <inheritdoc/>
    public void AllGather<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged => CollectiveBlocks.Offset(data.Length, counts, 1, 0);
    /// <summary>Does nothing: a process alone holds nothing.</summary>
    public void Dispose() { }
}

/// <summary>A collective operation failed (a member left, or the transport broke); the message is one line.</summary>
public sealed class CollectiveException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Members that are threads of one process, for fast tests of distributed logic: <see cref="Create"/> gives one member
/// per rank, each to be used from its own thread. Sums run in rank order on every member, so all members get the same
/// bits. A member that fails or is disposed early breaks the group: the others' next call throws instead of waiting.
/// </summary>
public sealed class InProcessCollective : ICollective
{
    private sealed class Group(int size)
    {
        public readonly Barrier Barrier = new(size);
        public readonly object?[] Slots = new object?[size];
        public volatile bool Broken;
    }

    private readonly Group _group;
    private readonly TimeSpan _timeout;

    private InProcessCollective(Group group, int rank, TimeSpan timeout)
    {
        _group = group;
        Rank = rank;
        _timeout = timeout;
    }

    /// <summary>
    /// A group of <paramref name="size"/> members; a member waiting longer than <paramref name="timeout"/> (default 60 s)
    /// for the others throws <see cref="CollectiveException"/>.
    /// </summary>
    public static InProcessCollective[] Create(int size, TimeSpan? timeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        var group = new Group(size);
        return [.. Enumerable.Range(0, size).Select(r => new InProcessCollective(group, r, timeout ?? TimeSpan.FromSeconds(60)))];
    }

    /// <inheritdoc/>
    public int Rank { get; }
    /// <inheritdoc/>
    public int Size => _group.Slots.Length;
    /// <inheritdoc/>
    public string Transport => "in-process threads";

    private void Wait()
    {
        if (_group.Broken) throw new CollectiveException($"rank {Rank}: another member of the group has failed");
        bool ok;
        try { ok = _group.Barrier.SignalAndWait(_timeout); }
        catch (Exception e) when (e is BarrierPostPhaseException or InvalidOperationException or ObjectDisposedException)
        {
            _group.Broken = true;
            throw new CollectiveException($"rank {Rank}: the group broke: {e.Message}", e);
        }
        if (!ok)
        {
            _group.Broken = true;
            throw new CollectiveException($"rank {Rank}: the other members did not arrive within {_timeout.TotalSeconds:0} s");
        }
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not a rank of the group.</exception>
    /// <exception cref="CollectiveException">The group broke or timed out, or the root sent another length.</exception>
    public void Broadcast<T>(Span<T> data, int root = 0) where T : unmanaged
    {
        if ((uint)root >= (uint)Size) throw new ArgumentOutOfRangeException(nameof(root), $"root {root} is not a rank of a group of {Size}");
        if (Rank == root) _group.Slots[root] = data.ToArray();
        Wait();
        var src = _group.Slots[root] as T[] ?? throw new CollectiveException($"rank {Rank}: rank {root} left the group");
        if (src.Length != data.Length)
            throw new CollectiveException($"rank {Rank}: broadcast of {data.Length} values but rank {root} sent {src.Length}");
        if (Rank != root) src.CopyTo(data);
        Wait();
        if (Rank == root) _group.Slots[root] = null;
    }

    /// <summary>
    /// Replaces <paramref name="data"/> by the element-wise sum over all members, added in rank order on every member so that
    /// all members get the same bits.
    /// </summary>
    /// <exception cref="CollectiveException">The group broke or timed out, or a member gave another length.</exception>
    public void AllReduceSum<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T>
    {
        _group.Slots[Rank] = data.ToArray();
        Wait();
        // every member adds the contributions in rank order: the same bits everywhere
        var first = _group.Slots[0] as T[] ?? throw new CollectiveException($"rank {Rank}: rank 0 left the group");
        if (first.Length != data.Length) throw new CollectiveException($"rank {Rank}: all-reduce of {data.Length} values but rank 0 gave {first.Length}");
        first.CopyTo(data);
        for (int r = 1; r < Size; r++)
        {
            var other = _group.Slots[r] as T[] ?? throw new CollectiveException($"rank {Rank}: rank {r} left the group");
            if (other.Length != data.Length) throw new CollectiveException($"rank {Rank}: all-reduce of {data.Length} values but rank {r} gave {other.Length}");
            System.Numerics.Tensors.TensorPrimitives.Add<T>(data, other, data);
        }
        Wait();
        _group.Slots[Rank] = null;
    }

    /// <inheritdoc/>
    /// <exception cref="CollectiveException">The group broke, or the others did not arrive within the timeout.</exception>
    public void Barrier() => Wait();

    /// <inheritdoc/>
    /// <remarks>The block is summed in rank order, as <see cref="AllReduceSum{T}"/> sums: the same bits as an all-reduce.</remarks>
    /// <exception cref="ArgumentException">The counts do not cut the data into one block a member.</exception>
    /// <exception cref="CollectiveException">The group broke or timed out, or a member gave another length.</exception>
    public void ReduceScatterSum<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int offset = CollectiveBlocks.Offset(data.Length, counts, Size, Rank);
        var block = data.Slice(offset, counts[Rank]);
        _group.Slots[Rank] = data.ToArray();
        Wait();
        for (int r = 0; r < Size; r++)
        {
            var other = _group.Slots[r] as T[] ?? throw new CollectiveException($"rank {Rank}: rank {r} left the group");
            if (other.Length != data.Length) throw new CollectiveException($"rank {Rank}: reduce-scatter of {data.Length} values but rank {r} gave {other.Length}");
            var part = other.AsSpan(offset, block.Length);
            if (r == 0) part.CopyTo(block);
            else System.Numerics.Tensors.TensorPrimitives.Add<T>(block, part, block);
        }
        Wait();
        _group.Slots[Rank] = null;
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The counts do not cut the data into one block a member.</exception>
    /// <exception cref="CollectiveException">The group broke or timed out, or a member gave another length.</exception>
    public void AllGather<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged
    {
        CollectiveBlocks.Offset(data.Length, counts, Size, Rank);
        _group.Slots[Rank] = data.ToArray();
        Wait();
        int offset = 0;
        for (int r = 0; r < Size; r++)
        {
            var other = _group.Slots[r] as T[] ?? throw new CollectiveException($"rank {Rank}: rank {r} left the group");
            if (other.Length != data.Length) throw new CollectiveException($"rank {Rank}: all-gather of {data.Length} values but rank {r} gave {other.Length}");
            if (r != Rank) other.AsSpan(offset, counts[r]).CopyTo(data.Slice(offset, counts[r]));
            offset += counts[r];
        }
        Wait();
        _group.Slots[Rank] = null;
    }

    /// <summary>
    /// Breaks the group: the others' next call (or the one they are waiting in, at its timeout) throws
    /// <see cref="CollectiveException"/>. What a member that fails calls, so that no one waits for it.
    /// </summary>
    public void Abort()
    {
        _group.Broken = true;
        try { _group.Barrier.RemoveParticipant(); } catch (InvalidOperationException) { }
    }

    /// <summary>Leaves the group after its last call.</summary>
    public void Dispose() { }
}
