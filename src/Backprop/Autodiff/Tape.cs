using System.Numerics;

namespace Backprop;

/// <summary>
/// Records ops in execution order for reverse-mode differentiation. A recorded tape can be replayed:
/// <see cref="Forward"/> recomputes every value in place from the current leaf values and <see cref="Backward"/>
/// reuses every gradient buffer, so a training step on a recorded tape allocates nothing.
/// </summary>
public sealed class Tape<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly List<Var<T>> _nodes = [];
    private readonly List<Var<T>> _leaves = [];
    private readonly HashSet<Var<T>> _leafSet = new(ReferenceEqualityComparer.Instance);

    /// <summary>Recorded op outputs, in execution order.</summary>
    public IReadOnlyList<Var<T>> Nodes => _nodes;

    /// <summary>Leaves that recorded ops read.</summary>
    public IReadOnlyList<Var<T>> Leaves => _leaves;

    /// <summary>A leaf owned by this tape (an input or a parameter used only here).</summary>
    public Var<T> Leaf(Tensor<T> value, bool requiresGrad = true, string? name = null)
    {
        var v = new Var<T>(value, requiresGrad, name, this, null, []);
        AddLeaf(v);
        return v;
    }

    public Var<T> Constant(Tensor<T> value, string? name = null) => Leaf(value, false, name);

    /// <summary>Runs <paramref name="op"/> on <paramref name="inputs"/> now and records it.</summary>
    public Var<T> Record(Op<T> op, params Var<T>[] inputs)
    {
        var shape = op.OutputShape(inputs);
        var output = new Tensor<T>(shape);
        op.Forward(inputs, output);
        bool requiresGrad = false;
        foreach (var input in inputs)
        {
            requiresGrad |= input.RequiresGrad;
            if (input.IsLeaf) AddLeaf(input);
        }
        var node = new Var<T>(output, requiresGrad, null, this, op, inputs);
        _nodes.Add(node);
        return node;
    }

    private void AddLeaf(Var<T> v)
    {
        if (_leafSet.Add(v)) _leaves.Add(v);
    }

    /// <summary>When set, receives the elapsed Stopwatch ticks of every op's forward (true) and backward (false) run.</summary>
    public Action<Var<T>, bool, long>? Profiler { get; set; }

    /// <summary>Recomputes every recorded value, in order, from the leaves' current values.</summary>
    public void Forward()
    {
        var nodes = _nodes;
        var profiler = Profiler;
        for (int i = 0; i < nodes.Count; i++)
        {
            var n = nodes[i];
            long t0 = profiler is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            n.Op!.Forward(n.InputArray, n.Value);
            profiler?.Invoke(n, true, System.Diagnostics.Stopwatch.GetTimestamp() - t0);
        }
    }

    /// <summary>
    /// Reverse-mode pass from <paramref name="root"/>. A scalar root is seeded with 1; any other root needs
    /// <paramref name="seed"/>, the gradient of some scalar with respect to it (a vector-Jacobian product).
    /// </summary>
    public void Backward(Var<T> root, Tensor<T>? seed = null)
    {
        if (!ReferenceEquals(root.Tape, this) || root.IsLeaf)
            throw new InvalidOperationException("backward starts from a value recorded on this tape");
        if (seed is null && root.Value.Length != 1)
            throw new ShapeMismatchException($"backward from a non-scalar {root.ShapeString} needs a seed gradient of that shape");
        if (seed is not null && !seed.SameShape(root.Shape))
            throw new ShapeMismatchException($"seed gradient is {seed.ShapeString} but the root is {root.ShapeString}");

        foreach (var n in _nodes) n.ResetGrad();
        foreach (var l in _leaves) l.ResetGrad();

        var g = root.GradTarget(out _);
        if (seed is null) g.Data[0] = T.One;
        else seed.Data.AsSpan().CopyTo(g.Data);

        int start = _nodes.LastIndexOf(root);
        for (int i = start; i >= 0; i--)
        {
            var n = _nodes[i];
            if (!n.HasGrad || !n.RequiresGrad) continue;
            long t0 = Profiler is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            n.Op!.Backward(n.InputArray, n);
            Profiler?.Invoke(n, false, System.Diagnostics.Stopwatch.GetTimestamp() - t0);
        }
    }
}
