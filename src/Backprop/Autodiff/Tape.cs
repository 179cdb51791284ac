using System.Numerics;
using Backprop.Kernels;
using Backprop.Core;

namespace Backprop.Autodiff;

/// <summary>Timing of one op run on a replay; <paramref name="fusedWith"/> is the node whose op ran inside it, if any.</summary>
public delegate void OpProfiler<T>(Var<T> node, bool forward, long ticks, Var<T>? fusedWith) where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>
/// Records ops in execution order for reverse-mode differentiation. A recorded tape can be replayed:
/// <see cref="Forward"/> recomputes every value in place from the current leaf values and <see cref="Backward(Var{T}, Tensor{T})"/>
/// reuses every gradient buffer, so a training step on a recorded tape allocates nothing.
/// The recorded ops run their kernels on the tape's <see cref="Context"/>.
/// </summary>
public sealed class Tape<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A tape whose ops run on <see cref="ComputeContext.Default"/>.</summary>
    public Tape() : this(ComputeContext.Default) { }

    /// <summary>A tape whose ops run on <paramref name="context"/>.</summary>
    public Tape(ComputeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Context = context;
    }

    /// <summary>What the recorded ops' kernels run on: threads, worker pool, kernel family and tuning.</summary>
    public ComputeContext Context { get; }

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

    /// <summary>A leaf owned by this tape that never receives a gradient (a batch's inputs or targets).</summary>
    public Var<T> Constant(Tensor<T> value, string? name = null) => Leaf(value, false, name);

    /// <summary>Runs <paramref name="op"/> on <paramref name="inputs"/> now and records it.</summary>
    public Var<T> Record(Op<T> op, params Var<T>[] inputs)
    {
        var shape = op.OutputShape(inputs);
        var output = new Tensor<T>(shape);
        // An op runs where the tape that runs it runs, here and on every replay: the tape passes its context.
        op.Forward(Context, inputs, output);
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

    /// <summary>
    /// When set, receives the elapsed Stopwatch ticks of every op's forward (true) and backward (false) run; for a
    /// fused pair, once, with the node whose op ran and the node whose op it absorbed (see <see cref="Fusion"/>).
    /// </summary>
    public OpProfiler<T>? Profiler { get; set; }

    /// <summary>
    /// Whether replays may fuse an op with its element-wise neighbour (see <see cref="Op{T}.TryForwardFused"/> and
    /// <see cref="Op{T}.TryBackwardFused"/>): a dense layer and its activation then make one pass over memory instead
    /// of two, forward and backward. The values and gradients are the same bit for bit; the profiler then reports
    /// the pair's time under the first op.
    /// </summary>
    public bool Fusion { get; set; } = true;

    /// <summary>Recomputes every recorded value, in order, from the leaves' current values.</summary>
    public void Forward() => ForwardFrom(0);

    /// <summary>
    /// Recomputes only the values recorded after <paramref name="node"/>, from its current value (which may have been
    /// set by hand, e.g. perturbed by a finite-difference check); for a leaf, the whole tape.
    /// </summary>
    public void ForwardAfter(Var<T> node)
    {
        int at = node.IsLeaf ? -1 : _nodes.IndexOf(node);
        if (!node.IsLeaf && at < 0) throw new ArgumentException("the value is not recorded on this tape", nameof(node));
        ForwardFrom(at + 1);
    }

    private void ForwardFrom(int first)
    {
        var nodes = _nodes;
        var profiler = Profiler;
        var context = Context;
        for (int i = first; i < nodes.Count; i++)
        {
            var n = nodes[i];
            long t0 = profiler is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            if (Fusion && i + 1 < nodes.Count && nodes[i + 1] is { } next && next.InputArray.Length == 1
                && ReferenceEquals(next.InputArray[0], n) && n.Op!.TryForwardFused(context, n.InputArray, n.Value, next.Op!, next.Value))
            {
                profiler?.Invoke(n, true, System.Diagnostics.Stopwatch.GetTimestamp() - t0, next);
                i++;
                continue;
            }
            n.Op!.Forward(context, n.InputArray, n.Value);
            profiler?.Invoke(n, true, System.Diagnostics.Stopwatch.GetTimestamp() - t0, null);
        }
    }

    // Per node: how many input slots read it, and (for fusion) where it sits; rebuilt when nodes are added.
    private readonly Dictionary<Var<T>, int> _consumers = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<Var<T>, int> _index = new(ReferenceEqualityComparer.Instance);
    private int _graphSize = -1;
    private bool[] _doneByFusion = [];

    private void IndexGraph()
    {
        if (_graphSize == _nodes.Count) return;
        _consumers.Clear();
        _index.Clear();
        for (int i = 0; i < _nodes.Count; i++)
        {
            _index[_nodes[i]] = i;
            foreach (var input in _nodes[i].InputArray) _consumers[input] = _consumers.GetValueOrDefault(input) + 1;
        }
        _doneByFusion = new bool[_nodes.Count];
        _graphSize = _nodes.Count;
    }

    /// <summary>
    /// Reverse-mode pass from <paramref name="root"/>. A scalar root is seeded with 1; any other root needs
    /// <paramref name="seed"/>, the gradient of some scalar with respect to it (a vector-Jacobian product).
    /// </summary>
    public void Backward(Var<T> root, Tensor<T>? seed = null) => Backward(root, seed, T.One);

    /// <summary>Reverse-mode pass from a scalar <paramref name="root"/> seeded with <paramref name="seed"/>: the gradients of seed·root.</summary>
    public void Backward(Var<T> root, T seed) => Backward(root, null, seed);

    private void Backward(Var<T> root, Tensor<T>? seed, T scalarSeed)
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
        if (seed is null) g.Data[0] = scalarSeed;
        else seed.Data.CopyTo(g.Data);

        int start = _nodes.LastIndexOf(root);
        if (Fusion)
        {
            IndexGraph();
            Array.Clear(_doneByFusion);
        }
        for (int i = start; i >= 0; i--)
        {
            var n = _nodes[i];
            if (!n.HasGrad || !n.RequiresGrad || (Fusion && _doneByFusion[i])) continue;
            long t0 = Profiler is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            Var<T>? absorbed = null;
            // Fuse the backward of the op that made this op's first input when that input feeds nothing else (so
            // its gradient is complete once this op has written it), and the producer's own input feeds only the
            // producer (so nothing else, this op included, writes its gradient first).
            if (Fusion && n.InputArray is [{ IsLeaf: false, InputArray: [var producerInput] } x, ..]
                && _consumers.GetValueOrDefault(x) == 1 && _consumers.GetValueOrDefault(producerInput) == 1
                && _index.TryGetValue(x, out int xi) && xi < i
                && n.Op!.TryBackwardFused(Context, n.InputArray, n, x.Op!, producerInput))
            {
                _doneByFusion[xi] = true;
                absorbed = x;
            }
            else
            {
                n.Op!.Backward(Context, n.InputArray, n);
            }
            Profiler?.Invoke(n, false, System.Diagnostics.Stopwatch.GetTimestamp() - t0, absorbed);
        }
    }
}
