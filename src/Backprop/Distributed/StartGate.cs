using System.Numerics;

namespace Backprop.Distributed;

/// <summary>
/// A member of a group failed before the group's work began (its data, a checkpoint or an output directory): every
/// member learns it at the first collective call, instead of waiting there for the member that will never come.
/// </summary>
/// <param name="rank">The lowest rank that failed (the one whose message this is).</param>
/// <param name="detail">That member's error, one line.</param>
/// <param name="exitCode">The exit status that member chose for its error.</param>
public sealed class MemberFailedException(int rank, string detail, int exitCode)
    : Exception($"rank {rank}: {detail}")
{
    /// <summary>The lowest rank that failed.</summary>
    public int Rank { get; } = rank;
    /// <summary>That member's error, one line, without the rank.</summary>
    public string Detail { get; } = detail;
    /// <summary>The exit status that member chose for its error.</summary>
    public int ExitCode { get; } = exitCode;
}

/// <summary>
/// A collective whose first call is preceded by an agreement that every member is ready. Setting up (reading the data
/// and a checkpoint, making output directories) can fail on one member alone (its copy of a file is missing) or on all
/// alike (a bad CSV); either way no member may be left waiting in a collective call for a member that has given up.
/// So a member that fails before its first call joins the agreement with its error (<see cref="Fail"/>), and the others
/// learn it there (<see cref="MemberFailedException"/>): every member then ends normally with the same message, which
/// one member prints. A failure after the start can leave members inside a collective call, and needs the transport's
/// abort.
/// </summary>
/// <remarks>The agreement is one small all-reduce (a flag per member), plus a broadcast of the message when one failed.</remarks>
public sealed class StartGate(ICollective inner) : ICollective
{
    private bool _started;

    /// <summary>The collective the calls go to.</summary>
    public ICollective Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    /// <summary>Whether this member has passed the agreement (its first collective call, or <see cref="Fail"/>).</summary>
    public bool Started => _started;

    /// <inheritdoc/>
    public int Rank => Inner.Rank;
    /// <inheritdoc/>
    public int Size => Inner.Size;
    /// <inheritdoc/>
    public string Transport => Inner.Transport;
    /// <inheritdoc/>
    public bool ShardingPays => Inner.ShardingPays;

    /// <summary>
    /// Joins the agreement as a member that failed before its first call (<paramref name="detail"/>, one line, and the
    /// exit status it chose), and returns what every member learns: the failure of the lowest rank that failed (which
    /// may be another member's). Throws if this member has already started.
    /// </summary>
    public MemberFailedException Fail(string detail, int exitCode)
    {
        ArgumentNullException.ThrowIfNull(detail);
        if (_started) throw new InvalidOperationException("this member has already passed the start; a failure now needs the transport's abort");
        return Agree(detail, Math.Max(1, exitCode))!;
    }

    private void Gate()
    {
        if (_started) return;
        if (Agree(null, 0) is { } failed) throw failed;
    }

    private MemberFailedException? Agree(string? detail, int exitCode)
    {
        _started = true;
        Span<double> codes = stackalloc double[Inner.Size];
        codes.Clear();
        codes[Inner.Rank] = detail is null ? 0 : exitCode;
        Inner.AllReduceSum(codes);
        int failed = codes.IndexOfAnyExcept(0.0);
        if (failed < 0) return null;
        string message = CollectiveText.Broadcast(Inner, detail, failed);
        return new MemberFailedException(failed, message, (int)codes[failed]);
    }

    /// <inheritdoc/>
    public void Broadcast<T>(Span<T> data, int root = 0) where T : unmanaged { Gate(); Inner.Broadcast(data, root); }
    /// <inheritdoc/>
    public void AllReduceSum<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T> { Gate(); Inner.AllReduceSum(data); }
    /// <inheritdoc/>
    public void Barrier() { Gate(); Inner.Barrier(); }
    /// <inheritdoc/>
    public void ReduceScatterSum<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged, IFloatingPointIeee754<T> { Gate(); Inner.ReduceScatterSum(data, counts); }
    /// <inheritdoc/>
    public void AllGather<T>(Span<T> data, ReadOnlySpan<int> counts) where T : unmanaged { Gate(); Inner.AllGather(data, counts); }
    /// <summary>Disposes the inner collective.</summary>
    public void Dispose() => Inner.Dispose();
}
