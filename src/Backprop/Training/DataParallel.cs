using System.Numerics;
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
    private readonly double[] _scalar = new double[1];

    public ICollective Collective { get; } = collective ?? throw new ArgumentNullException(nameof(collective));
    public int Rank => Collective.Rank;
    public int Size => Collective.Size;

    /// <summary>This member's contiguous share of a global batch of <paramref name="globalCount"/> rows: the first
    /// <c>count % size</c> members take one row more (a member may get none when the batch is smaller than the group).</summary>
    public (int Start, int Count) Share(int globalCount) => Share(globalCount, Rank, Size);

    public static (int Start, int Count) Share(int globalCount, int rank, int size)
    {
        int q = globalCount / size, rem = globalCount % size;
        return (rank * q + Math.Min(rank, rem), q + (rank < rem ? 1 : 0));
    }

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
    /// Turns this member's gradient of its share's mean loss (divisor <paramref name="localDivisor"/>; 0 for a member
    /// without rows, whose gradient must then be zeros) into the global batch's, summed over all members.
    /// Returns the global divisor.
    /// </summary>
    public double AllReduceGradients(Span<T> gradients, double localDivisor)
    {
        _scalar[0] = localDivisor;
        Collective.AllReduceSum<double>(_scalar);
        double global = _scalar[0];
        if (global > 0 && localDivisor != global) TensorPrimitives.Multiply(gradients, T.CreateChecked(localDivisor / global), gradients);
        Collective.AllReduceSum(gradients);
        return global;
    }

    /// <summary>Sums <paramref name="values"/> over all members, in place (loss sums, counts, metric numerators).</summary>
    public void Sum(Span<double> values) => Collective.AllReduceSum(values);
}
