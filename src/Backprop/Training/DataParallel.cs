using System.Numerics;
using Backprop.Autodiff;
using Backprop.Distributed;
using Backprop.Nn;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Backprop.Training;

/// <summary>
/// What data-parallel training does beyond one process, over a <see cref="ICollective"/>: every member holds the whole
/// model, takes its contiguous share of each global batch, and the members' gradients are summed so that each gets
/// exactly the gradient of the global batch.
/// <list type="bullet">
/// <item>A loss with the mean reduction divides by its batch's divisor (the rows, or the sum of the targets' class
/// weights). A member's gradient is of its own share's mean, so it is scaled by its divisor over the global divisor
/// before the sum: Σ_r (D_r/D)·∇(ℓ_r/D_r) = ∇(Σ_r ℓ_r)/D, the global batch's mean.</item>
/// <item>Everything that must agree is broadcast from rank 0: the initial parameters, buffers and optimizer state.</item>
/// </list>
/// </summary>
public sealed class DataParallel<T>(ICollective collective) where T : unmanaged, IFloatingPointIeee754<T>
{
    private double[]? _scalars;

    /// <summary>The group this member trains in.</summary>
    public ICollective Collective { get; } = collective ?? throw new ArgumentNullException(nameof(collective));
    /// <summary>This member's index in the group, 0 to <see cref="Size"/> − 1; rank 0's state is the one broadcast.</summary>
    public int Rank => Collective.Rank;
    /// <summary>The number of members in the group.</summary>
    public int Size => Collective.Size;

    /// <summary>This member's contiguous share of a global batch of <paramref name="globalCount"/> rows: the first
    /// <c>count % size</c> members take one row more (a member may get none when the batch is smaller than the group).</summary>
    public (int Start, int Count) Share(int globalCount) => Share(globalCount, Rank, Size);

    /// <summary>Member <paramref name="rank"/>'s contiguous share of a global batch of <paramref name="globalCount"/> rows
    /// in a group of <paramref name="size"/>, as <see cref="Share(int)"/> describes.</summary>
    public static (int Start, int Count) Share(int globalCount, int rank, int size) => Data.BatchLoader.ShareOf(globalCount, rank, size);

    /// <summary>Makes every member's parameters, buffers and (when given) optimizer state and step count rank 0's.</summary>
    public void BroadcastModel(Sequential<T> network, Optimizer<T>? optimizer = null)
    {
        foreach (var p in network.Parameters()) Collective.Broadcast(p.Value.Span);
        BroadcastBuffers(network);
        if (optimizer is null) return;
        foreach (var (_, state) in optimizer.State()) Collective.Broadcast(state.Span);
        Span<long> step = [optimizer.StepCount];
        Collective.Broadcast(step);
        optimizer.StepCount = step[0];
    }

    /// <summary>Makes every member's buffers (a batch norm's running statistics, which each member updates from its own share) rank 0's.</summary>
    public void BroadcastBuffers(Sequential<T> network)
    {
        foreach (var layer in network.Layers)
            foreach (var b in layer.Buffers) Collective.Broadcast(b.Value.Span);
    }

    /// <summary>
    /// The agreement before a backward pass: every member gives its share's loss divisor (0 for a member without rows)
    /// and whether its loss is finite; the small all-reduce returns the lowest rank whose loss was not finite (or −1),
    /// and <paramref name="scale"/>, what this member's gradient of its share's mean must be multiplied by to be its
    /// part of the global batch's mean: D_r/D, so that Σ_r (D_r/D)·∇(ℓ_r/D_r) = ∇(Σ_r ℓ_r)/D. The backward pass takes
    /// it as its seed, so the gradient comes out scaled at no cost (a separate pass over 2 MB of gradients cost about
    /// 3% of an MNIST step).
    /// </summary>
    public int AgreeOnBatch(double localDivisor, bool localFinite, out double scale)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        _scalars ??= new double[1 + Size];
        Array.Clear(_scalars);
        _scalars[0] = localDivisor;
        if (!localFinite) _scalars[1 + Rank] = 1;
        Collective.AllReduceSum<double>(_scalars);
        AgreementSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        double global = _scalars[0];
        scale = global > 0 ? localDivisor / global : 0;
        for (int r = 0; r < Size; r++) if (_scalars[1 + r] > 0) return r;
        return -1;
    }

    /// <summary>Sums the members' (already scaled, see <see cref="AgreeOnBatch"/>) gradients in place: one all-reduce over the flat buffer.</summary>
    public void SumGradients(Span<T> gradients)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        Collective.AllReduceSum(gradients);
        AllReduceSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        AllReduceCalls++;
    }

    private int[]? _blocks;
    private int _blocksLength;

    /// <summary>
    /// The blocks a flat buffer of <paramref name="length"/> values is cut into for a sharded optimizer step: member r
    /// owns the contiguous block r (the first <c>length % size</c> members one value more).
    /// </summary>
    public ReadOnlySpan<int> Blocks(int length)
    {
        if (_blocks is null || _blocksLength != length)
        {
            _blocks = new int[Size];
            for (int r = 0; r < Size; r++) _blocks[r] = Share(length, r, Size).Count;
            _blocksLength = length;
        }
        return _blocks;
    }

    /// <summary>This member's block of a flat buffer of <paramref name="length"/> values (see <see cref="Blocks"/>).</summary>
    public (int Start, int Count) Block(int length) => Share(length, Rank, Size);

    /// <summary>
    /// Sums the members' (already scaled) gradients into this member's block only: the reduce-scatter half of
    /// <see cref="SumGradients"/>, for a step in which each member updates its own block of the parameters.
    /// </summary>
    public void ReduceScatterGradients(Span<T> gradients)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        Collective.ReduceScatterSum(gradients, Blocks(gradients.Length));
        AllReduceSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        AllReduceCalls++;
    }

    /// <summary>
    /// After each member updated its own block of <paramref name="parameters"/> (laid end to end, as in the flat gradient
    /// buffer), gives every member the others' blocks: this member's block is copied into <paramref name="staging"/> (the
    /// gradient buffer, whose values are spent by then), the blocks are gathered, and the others' blocks copied back.
    /// </summary>
    public void AllGatherParameters(IReadOnlyList<Var<T>> parameters, Span<T> staging)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_values is null || _valuesOf != parameters)
        {
            _values = [.. parameters.Select(p => p.Value)];
            _valuesOf = parameters;
        }
        GatherBlocks(_values, staging);
        AllReduceSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>
    /// After each member updated its own block of <paramref name="values"/> (all the parameters in one buffer, laid out
    /// as the gradients), gives every member the others' blocks, in place.
    /// </summary>
    public void AllGatherParameters(Span<T> values)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        Collective.AllGather(values, Blocks(values.Length));
        AllReduceSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>
    /// Gives every member the whole optimizer state after steps in which each updated only its own block: each state
    /// family (Adam's m and v, SGD's momentum, …) is laid out as the parameters are and gathered the same way, so that
    /// rank 0's checkpoint holds all of it. Uses <paramref name="staging"/> (as long as the parameters) as scratch.
    /// </summary>
    public void AllGatherOptimizerState(Optimizer<T> optimizer, Span<T> staging)
    {
        var tensors = optimizer.State().Select(s => s.Tensor).ToArray();
        int perFamily = optimizer.Parameters.Count;
        for (int f = 0; f + perFamily <= tensors.Length; f += perFamily) GatherBlocks(tensors[f..(f + perFamily)], staging);
    }

    /// <summary>
    /// Gives every member the others' blocks of <paramref name="tensors"/> laid end to end: this member's block goes into
    /// <paramref name="staging"/>, the blocks are gathered there, and the others' blocks are copied back.
    /// </summary>
    private void GatherBlocks(Core.Tensor<T>[] tensors, Span<T> staging)
    {
        var (lo, count) = Block(staging.Length);
        CopyRange(tensors, staging, lo, lo + count, toStaging: true);
        Collective.AllGather(staging, Blocks(staging.Length));
        CopyRange(tensors, staging, 0, lo, toStaging: false);
        CopyRange(tensors, staging, lo + count, staging.Length, toStaging: false);
    }

    private Core.Tensor<T>[]? _values;
    private IReadOnlyList<Var<T>>? _valuesOf;

    private static void CopyRange(Core.Tensor<T>[] tensors, Span<T> flat, int from, int to, bool toStaging)
    {
        int offset = 0;
        for (int i = 0; i < tensors.Length; i++)
        {
            var t = tensors[i];
            int n = t.Length;
            int lo = Math.Max(from, offset), hi = Math.Min(to, offset + n);
            if (hi > lo)
            {
                var values = t.Span.Slice(lo - offset, hi - lo);
                var slots = flat.Slice(lo, hi - lo);
                if (toStaging) values.CopyTo(slots); else slots.CopyTo(values);
            }
            offset += n;
        }
    }

    /// <summary>Whether any member says <paramref name="local"/> (a non-finite gradient in its block of the update).</summary>
    public bool AnyMember(bool local)
    {
        Span<double> flag = [local ? 1 : 0];
        Collective.AllReduceSum<double>(flag);
        return flag[0] > 0;
    }

    /// <summary>Time spent summing gradients (<see cref="SumGradients"/>, or in a sharded step <see cref="ReduceScatterGradients"/>
    /// and <see cref="AllGatherParameters(Span{T})"/>, with its copies): the communication cost of data parallelism.</summary>
    public double AllReduceSeconds { get; private set; }
    /// <summary>The number of gradient sums (<see cref="SumGradients"/> or <see cref="ReduceScatterGradients"/> calls) so far.</summary>
    public long AllReduceCalls { get; private set; }

    /// <summary>Time spent in <see cref="AgreeOnBatch"/>: mostly waiting for the slowest member to finish its forward pass.</summary>
    public double AgreementSeconds { get; private set; }

    /// <summary>
    /// Every member's copy of the divergence that member <paramref name="root"/> found (its <paramref name="local"/>
    /// on that member), so that all stop with the same message.
    /// </summary>
    public NonFiniteValueException ShareDivergence(NonFiniteValueException? local, int root)
    {
        string? text = Rank == root && local is not null
            ? $"{(int)local.Remedy}|{local.Epoch}|{local.Step}|{local.Batch}|{local.Layer}|{local.Op}|rank {root}: {local.Detail}"
            : null;
        var parts = CollectiveText.Broadcast(Collective, text is null ? null : text[..Math.Min(text.Length, 600)], root).Split('|', 7);
        if (parts.Length < 7) return new NonFiniteValueException($"rank {root}: a loss is not finite", DivergenceRemedy.LowerLearningRateOrClip);
        static int? Int(string s) => int.TryParse(s, out var v) ? v : null;
        static long? Long(string s) => long.TryParse(s, out var v) ? v : null;
        return new NonFiniteValueException(parts[6], (DivergenceRemedy)(Int(parts[0]) ?? 0), Int(parts[1]), Long(parts[2]), Int(parts[3]),
            parts[4].Length == 0 ? null : parts[4], parts[5].Length == 0 ? null : parts[5]);
    }

    /// <summary>Sums <paramref name="values"/> over all members, in place (loss sums, counts, metric numerators).</summary>
    public void Sum(Span<double> values) => Collective.AllReduceSum(values);
}
