using System.Numerics;
using Backprop.Core;

namespace Backprop.Data;

/// <summary>
/// Serves mini-batches of a data set into buffers it owns and reuses: <see cref="BatchX"/> (BatchSize × FeatureCount,
/// row-major) and <see cref="BatchY"/> (BatchSize). Each epoch visits every row exactly once, the last batch being
/// partial when the row count is not a multiple of the batch size; <see cref="CurrentBatchSize"/> says how many rows of
/// the buffers are valid. With shuffling, epoch e's order is a Fisher–Yates permutation from
/// <c>new Random(unchecked(seed + e * 1_000_003))</c>, the same for the same seed and epoch regardless of
/// what ran before. Nothing is allocated per batch; per epoch, only the <see cref="Random"/>.
/// </summary>
/// <example><code>
/// var loader = new BatchLoader(train, batchSize: 64, seed: 42);
/// for (int epoch = 0; epoch &lt; epochs; epoch++)
/// {
///     loader.StartEpoch(epoch);
///     while (loader.MoveNext())
///         Step(loader.CurrentX, loader.CurrentY);   // spans over the first CurrentBatchSize rows
/// }
/// </code></example>
public sealed class BatchLoader
{
    private readonly float[]? _features;
    /// <summary>The data set, when the loader reads one (its rows may be stored as bytes, <see cref="LabeledData.UnitBytes"/>).</summary>
    private readonly LabeledData? _data;
    private readonly int[] _labels;
    private readonly int[] _order;
    private readonly bool _shuffle;
    private readonly int _seed;
    private int _position;

    /// <summary>
    /// A loader over <c>labels.Length</c> rows of <paramref name="featureCount"/> features (row-major in
    /// <paramref name="features"/>, not copied). Call <see cref="StartEpoch"/> before the first batch.
    /// </summary>
    /// <param name="features">The data set's features, row-major.</param>
    /// <param name="labels">One class index per row.</param>
    /// <param name="featureCount">Features per row.</param>
    /// <param name="batchSize">Rows per batch; capped at the row count.</param>
    /// <param name="seed">The seed from which each epoch's shuffle is derived (<see cref="EpochSeed"/>).</param>
    /// <param name="shuffle">False to visit the rows in data-set order every epoch (evaluation).</param>
    /// <exception cref="ArgumentNullException">An array is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="featureCount"/> or <paramref name="batchSize"/> is not positive.</exception>
    /// <exception cref="ArgumentException">The feature array does not hold <c>labels.Length × featureCount</c> values.</exception>
    public BatchLoader(float[] features, int[] labels, int featureCount, int batchSize, int seed, bool shuffle = true)
        : this(features ?? throw new ArgumentNullException(nameof(features)), null, labels, featureCount, batchSize, seed, shuffle) { }

    private BatchLoader(float[]? features, LabeledData? data, int[] labels, int featureCount, int batchSize, int seed, bool shuffle)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(featureCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (features is not null && (long)labels.Length * featureCount != features.Length)
            throw new ArgumentException($"{labels.Length} labels × {featureCount} features needs {(long)labels.Length * featureCount} values but the feature array holds {features.Length}");
        _features = features;
        _data = data;
        _labels = labels;
        FeatureCount = featureCount;
        Count = labels.Length;
        BatchSize = Math.Max(1, Math.Min(batchSize, Math.Max(1, Count)));
        _seed = seed;
        _shuffle = shuffle;
        _order = new int[Count];
        BatchX = new float[checked(BatchSize * featureCount)];
        BatchY = new int[BatchSize];
        BatchIndices = new int[BatchSize];
        Epoch = -1;
        _position = Count; // nothing until StartEpoch
    }

    /// <summary>A loader over <paramref name="data"/>, including its target values when it has them (<see cref="GatherTargets"/>).</summary>
    /// <param name="data">The data set; its arrays are read, not copied.</param>
    /// <param name="batchSize">Rows per batch; capped at the row count.</param>
    /// <param name="seed">The seed from which each epoch's shuffle is derived (<see cref="EpochSeed"/>).</param>
    /// <param name="shuffle">False to visit the rows in data-set order every epoch (evaluation).</param>
    public BatchLoader(LabeledData data, int batchSize, int seed, bool shuffle = true)
        : this(null, data ?? throw new ArgumentNullException(nameof(data)), data.Labels, data.FeatureCount, batchSize, seed, shuffle)
    {
        _targets = data.Targets;
        TargetCount = data.TargetCount;
    }

    private readonly float[]? _targets;

    /// <summary>Target values per row (0 when the data has class labels only).</summary>
    public int TargetCount { get; }

    /// <summary>
    /// Copies the current batch's target rows (CurrentBatchSize × <see cref="TargetCount"/>) into <paramref name="destination"/>,
    /// converting to T; nothing is allocated.
    /// </summary>
    public void GatherTargets<T>(Span<T> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (_targets is null) throw new InvalidOperationException("the data has class labels, not target values");
        int t = TargetCount;
        var rows = CurrentIndices;
        if (destination.Length < rows.Length * t)
            throw new ArgumentException($"the destination holds {destination.Length} values but the batch has {rows.Length * t}", nameof(destination));
        for (int k = 0; k < rows.Length; k++)
        {
            var src = _targets.AsSpan(rows[k] * t, t);
            var dst = destination.Slice(k * t, t);
            for (int j = 0; j < t; j++) dst[j] = T.CreateTruncating(src[j]);
        }
    }

    /// <summary>Rows in the data set.</summary>
    public int Count { get; }
    /// <summary>Features per row.</summary>
    public int FeatureCount { get; }
    /// <summary>Rows in a full batch (the requested size, capped at <see cref="Count"/>).</summary>
    public int BatchSize { get; }
    /// <summary>Batches per epoch, counting the last partial one.</summary>
    public int BatchesPerEpoch => (Count + BatchSize - 1) / BatchSize;
    /// <summary>The epoch started last (−1 before the first).</summary>
    public int Epoch { get; private set; }
    /// <summary>The index within the epoch of the current batch (−1 before the first <see cref="MoveNext"/>).</summary>
    public int BatchIndex { get; private set; } = -1;

    /// <summary>Feature buffer, BatchSize × FeatureCount; the first CurrentBatchSize rows hold the current batch.</summary>
    public float[] BatchX { get; }
    /// <summary>Label buffer; the first CurrentBatchSize entries hold the current batch.</summary>
    public int[] BatchY { get; }
    /// <summary>The data-set row of each row of the current batch.</summary>
    public int[] BatchIndices { get; }
    /// <summary>Rows in the current batch: BatchSize, or fewer for the last one (with a shard: this member's share of it).</summary>
    public int CurrentBatchSize { get; private set; }

    /// <summary>Rows in the current global batch, of which a shard takes its share (without a shard: <see cref="CurrentBatchSize"/>).</summary>
    public int GlobalBatchSize { get; private set; }

    /// <summary>This member's rank and the group's size when the batches are shared out (data-parallel training); (0, 1) otherwise.</summary>
    public (int Rank, int Size) Shard { get; private set; } = (0, 1);

    /// <summary>Member <paramref name="rank"/>'s contiguous share of <paramref name="count"/> rows among <paramref name="size"/>: the first <c>count % size</c> members take one row more.</summary>
    public static (int Start, int Count) ShareOf(int count, int rank, int size)
    {
        int q = count / size, rem = count % size;
        return (rank * q + Math.Min(rank, rem), q + (rank < rem ? 1 : 0));
    }

    /// <summary>
    /// Shares every batch out among <paramref name="size"/> members: each batch is the same global batch, in the same
    /// shuffled order, as for one process, and member <paramref name="rank"/> takes its contiguous share of it (the first
    /// <c>batch % size</c> members one row more; a member may get none of a batch smaller than the group).
    /// </summary>
    public void SetShard(int rank, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if ((uint)rank >= (uint)size) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not in a group of {size}");
        Shard = (rank, size);
    }

    /// <summary>The current batch's features in <see cref="BatchX"/>; after <see cref="Advance"/> (which leaves BatchX alone) it throws.</summary>
    public Span<float> CurrentX => _batchXCurrent || CurrentBatchSize == 0
        ? BatchX.AsSpan(0, CurrentBatchSize * FeatureCount)
        : throw new InvalidOperationException("the current batch was taken with Advance, which leaves BatchX as it was: use GatherX, or MoveNext to fill BatchX");

    private bool _batchXCurrent;
    /// <summary>The current batch's labels: the first <see cref="CurrentBatchSize"/> entries of <see cref="BatchY"/>.</summary>
    public Span<int> CurrentY => BatchY.AsSpan(0, CurrentBatchSize);
    /// <summary>The data-set rows of the current batch, in batch order: the first <see cref="CurrentBatchSize"/> entries of <see cref="BatchIndices"/>.</summary>
    public ReadOnlySpan<int> CurrentIndices => BatchIndices.AsSpan(0, CurrentBatchSize);

    /// <summary>The row order of the current epoch.</summary>
    public ReadOnlySpan<int> EpochOrder => _order;

    /// <summary>Starts epoch <paramref name="epoch"/>: sets up its (shuffled) row order and rewinds.</summary>
    public void StartEpoch(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        for (int i = 0; i < _order.Length; i++) _order[i] = i;
        if (_shuffle) DataSplit.Shuffle(_order, new Random(EpochSeed(_seed, epoch)));
        Epoch = epoch;
        _position = 0;
        BatchIndex = -1;
        CurrentBatchSize = 0;
    }

    /// <summary>The seed of epoch <paramref name="epoch"/>'s shuffle.</summary>
    public static int EpochSeed(int seed, int epoch) => unchecked(seed + epoch * 1_000_003);

    /// <summary>Fills the buffers with the next batch of the epoch; false when the epoch is over.</summary>
    public bool MoveNext()
    {
        if (!Advance()) return false;
        GatherX(BatchX.AsSpan());
        _batchXCurrent = true;
        return true;
    }

    /// <summary>
    /// Moves to the next batch of the epoch, filling <see cref="BatchY"/> and <see cref="BatchIndices"/> but not
    /// <see cref="BatchX"/>; <see cref="GatherX{T}(Span{T}, Kernels.ComputeContext?)"/> then copies the features straight to where they are
    /// used (a network's input), saving a pass. False when the epoch is over.
    /// </summary>
    public bool Advance()
    {
        if (_position >= Count)
        {
            CurrentBatchSize = 0;
            return false;
        }
        int b = Math.Min(BatchSize, Count - _position);
        _batchXCurrent = false;
        var (first, share) = ShareOf(b, Shard.Rank, Shard.Size);
        for (int k = 0; k < share; k++)
        {
            int row = _order[_position + first + k];
            BatchIndices[k] = row;
            BatchY[k] = _labels[row];
        }
        _position += b;
        GlobalBatchSize = b;
        CurrentBatchSize = share;
        BatchIndex++;
        return true;
    }

    /// <summary>Copies the current batch's feature rows from the data set into <paramref name="destination"/>, converting to T, on <paramref name="context"/>'s threads (null: the default).</summary>
    public void GatherX<T>(Span<T> destination, Kernels.ComputeContext? context = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        context ??= Kernels.ComputeContext.Default;
        if (_data is { } data && data.UnitBytes is { IsEmpty: false } bytes)
            Kernels.RowGather.Gather(context, bytes, FeatureCount, CurrentIndices, destination);
        else Kernels.RowGather.Gather(context, _features ?? _data!.Features, FeatureCount, CurrentIndices, destination);
    }

    /// <summary>Starts <paramref name="epoch"/> and yields the batch index as each batch is loaded into the buffers.</summary>
    public IEnumerable<int> Batches(int epoch)
    {
        StartEpoch(epoch);
        while (MoveNext()) yield return BatchIndex;
    }

    /// <summary>Copies the current batch's features into <paramref name="destination"/> (at least CurrentBatchSize × FeatureCount long).</summary>
    public void CopyBatchX(Span<double> destination)
    {
        var src = CurrentX;
        if (destination.Length < src.Length)
            throw new ArgumentException($"the destination holds {destination.Length} values but the batch has {src.Length}", nameof(destination));
        Kernels.RowGather.Convert(src, destination);
    }

    /// <summary>Copies the current batch's features into <paramref name="destination"/>, converting to <typeparamref name="T"/>.</summary>
    public void CopyBatchX<T>(Span<T> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var src = CurrentX;
        if (destination.Length < src.Length)
            throw new ArgumentException($"the destination holds {destination.Length} values but the batch has {src.Length}", nameof(destination));
        Kernels.RowGather.Convert(src, destination);
    }

    /// <summary>Copies the current batch's labels into <paramref name="destination"/>.</summary>
    public void CopyBatchY(Span<int> destination) => CurrentY.CopyTo(destination);

    /// <summary>
    /// Copies the current batch's features into a tensor of shape [BatchSize, FeatureCount] (or larger data) that
    /// the caller reuses; rows past CurrentBatchSize are left as they were.
    /// </summary>
    public void CopyBatchX<T>(Tensor<T> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(destination);
        CopyBatchX(destination.Span);
    }
}
