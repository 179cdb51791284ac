using System.Numerics;
using Backprop.Core;
using Backprop.Kernels;
using Backprop.Ops;

namespace Backprop.Nn.Inference;

/// <summary>
/// A trained network compiled for the forward pass alone: each layer's <see cref="ILayer{T}.CompileInference"/> step
/// (dense layers with their weights packed once for the GEMM, bias and activation fused into the product's output
/// pass, norm layers with their constants prepared, dropout left out), run without a tape. It is a snapshot: compiled
/// from a copy of the network in evaluation mode, so later training of the network does not change it.
/// </summary>
/// <remarks>
/// Gives the bits of the tape's evaluation forward pass (<see cref="Sequential{T}.Predict"/>) on the same context, up
/// to the sign of a zero: each step calls the kernels the tape's ops call, in the same order. Thread-safe: any number
/// of threads may call <see cref="Predict(ReadOnlySpan{T}, Span{T}, int)"/> at once; each keeps its own buffers (grown
/// to the largest batch it has run), so a warm call allocates nothing.
/// </remarks>
public sealed class InferenceNetwork<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly IInferenceStep<T>[] _steps;
    private readonly ThreadLocal<Workspace> _workspaces;

    private InferenceNetwork(IInferenceStep<T>[] steps, int inputs, int outputs, ComputeContext context)
    {
        _steps = steps;
        Inputs = inputs;
        Outputs = outputs;
        Context = context;
        _workspaces = new(() => new Workspace(_steps));
    }

    /// <summary>Compiles <paramref name="network"/> (a copy of it in evaluation mode) for <paramref name="context"/> (null: the default).</summary>
    public static InferenceNetwork<T> Compile(Sequential<T> network, ComputeContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        context ??= ComputeContext.Default;
        var copy = network.Clone();
        copy.SetTraining(false);
        var steps = new List<IInferenceStep<T>>();
        foreach (var layer in copy.Layers)
            if (layer.CompileInference(context) is { } step) steps.Add(step);
        return new InferenceNetwork<T>([.. steps], network.Inputs, network.Outputs, context);
    }

    /// <summary>Features per input row: the network's input width.</summary>
    public int Inputs { get; }
    /// <summary>Features per output row: the network's output width.</summary>
    public int Outputs { get; }

    /// <summary>What the steps run on: its threads and GEMM kernels (the weights are packed for them).</summary>
    public ComputeContext Context { get; }

    /// <summary>The compiled steps, in order (layers that are the identity at inference, like dropout, have none).</summary>
    public IReadOnlyList<IInferenceStep<T>> Steps => _steps;

    /// <summary>y[rows × Outputs] = the network on x[rows × Inputs].</summary>
    public void Predict(ReadOnlySpan<T> x, Span<T> y, int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (x.Length < (long)rows * Inputs) throw new ShapeMismatchException($"the input holds {x.Length} values, needs {rows}×{Inputs}");
        if (y.Length < (long)rows * Outputs) throw new ShapeMismatchException($"the output holds {y.Length} values, needs {rows}×{Outputs}");
        if (rows == 0) return;
        if (_steps.Length == 0) { x[..(rows * Inputs)].CopyTo(y); return; }
        var ws = _workspaces.Value!;
        var plan = PassPlan.For(rows, RowsPerPass, Context.Tuning.TinyMacs);
        ws.Reserve(plan.LargestPass);
        for (int pass = 0, start = 0; pass < plan.Passes; pass++)
        {
            int n = plan.Rows(pass);
            ReadOnlySpan<T> current = x.Slice(start * Inputs, n * Inputs);
            for (int i = 0; i < _steps.Length; i++)
            {
                var step = _steps[i];
                Span<T> output = i == _steps.Length - 1 ? y.Slice(start * Outputs, n * Outputs) : ws.Activations(i).AsSpan(0, n * step.Outputs);
                step.Run(current, output, n, ws.Scratch.AsSpan(0, step.ScratchLength(n)), ws.States[i]);
                current = output;
            }
            start += n;
        }
    }

    /// <summary>
    /// The most rows one pass through the layers takes (give or take the few rows that keep the passes' edges on the
    /// kernels' row groups); a larger batch runs in passes of about equal size, each of which gives its rows the tape's
    /// bits for the whole batch (see <see cref="PassPlan"/>). Bounds the buffers (two of rows × the widest layer, and its
    /// pre-activations). 1024 rather than 256: a pass hands each threaded layer to the pool once, and on this
    /// project's VM, in its slower spells, each hand-over cost about 0.15 ms (`bench infer`, 784-512-512-10, batch 1024,
    /// 2 threads, Zen 5: 205k samples/s in passes of 128 rows, 210k of 256, 228k of 512, 254k of 1024; in its faster
    /// spells 264–284k either way, and at 1 thread 150–156k either way).
    /// </summary>
    public int RowsPerPass { get; init; } = 1024;

    /// <summary>The outputs for a batch (rows × Inputs), as a new tensor.</summary>
    public Tensor<T> Predict(Tensor<T> x)
    {
        if (x.Rank != 2 || x.Dim(1) != Inputs) throw new ShapeMismatchException($"input is {x.ShapeString} but the network takes {Inputs} inputs");
        var y = new Tensor<T>(x.Dim(0), Outputs);
        Predict(x.Span, y.Span, x.Dim(0));
        return y;
    }

    /// <summary>One thread's buffers: two activations that the steps write in turn, the steps' scratch and states.</summary>
    private sealed class Workspace(IInferenceStep<T>[] steps)
    {
        private readonly T[][] _buffers = [[], []];
        private int _rows;
        public T[] Scratch { get; private set; } = [];
        public object?[] States { get; } = [.. steps.Select(s => s.CreateState())];

        public T[] Activations(int step) => _buffers[step & 1];

        public void Reserve(int rows)
        {
            if (rows <= _rows) return;
            int width = 0, scratch = 0;
            foreach (var s in steps)
            {
                width = Math.Max(width, s.Outputs);
                scratch = Math.Max(scratch, s.ScratchLength(rows));
            }
            _buffers[0] = new T[(long)rows * width];
            _buffers[1] = new T[(long)rows * width];
            Scratch = new T[scratch];
            _rows = rows;
        }
    }
}

/// <summary>
/// How <see cref="InferenceNetwork{T}"/> cuts a batch into passes: every pass but the last a whole number of
/// <see cref="GemmSmall.DotRowGroup"/> rows, the last the rest; about rows / RowsPerPass passes (rounded up), the groups
/// shared out evenly, but never so many that a pass has at most <see cref="KernelTuning.TinyMacs"/> rows.
/// </summary>
/// <remarks>
/// Why each row then gets the bits it gets inside the tape's single product of the whole batch: the rows are
/// independent in evaluation mode, but the kernels are not the same for every row count m. In <see cref="Gemm"/> and
/// <see cref="PackedGemm"/> the path depends on m through m·n·k ≤ TinyMacs (the plain loop: separate multiplies and adds
/// where the kernels chain FMAs) and m = 1 (the packed one-row loop); and within the narrow dot products
/// (<see cref="GemmSmall.DotNT"/>) a row's summation order depends on whether it is in the last m mod 4 rows. The
/// other choices depend on n and k alone (the narrow path, the depth blocks) or change no element's sum (the row
/// blocking, the thread split); the norm steps and the activations work row by row or element by element, where the
/// activations round only spans shorter than a vector differently (<see cref="Activation{T}.ForwardIsPiecewiseExact"/>).
/// A pass of more than TinyMacs rows has more than TinyMacs multiply-adds in every product (n·k ≥ 1), more than one
/// row and more values than a vector, as the whole batch does: both take the kernels' path. Passes that start on a
/// multiple of 4 rows leave each row the same place in its group, and the last pass ends where the batch does, so
/// the rows after its last whole group are the batch's. Measured before: a batch of 1025 ran as 1024 + 1 rows, and
/// 4-100-3's products on the one row (400 and 300 multiply-adds) took the plain loop, one ulp from the tape; passes
/// of 513 + 512 rows instead left row 512 to be summed alone in the narrow product, one ulp off as well. With the
/// defaults (1024 rows, 512 multiply-adds) a batch of 1025 to 1031 rows runs as one pass, since two would leave one of
/// at most 512 rows (a 1-1 layer's 512 multiply-adds would take the plain loop), and every larger one in passes of 516
/// to 1024 rows.
/// </remarks>
internal readonly struct PassPlan
{
    private readonly int _groups, _extra, _rest;

    private PassPlan(int passes, int groups, int extra, int rest)
    {
        Passes = passes;
        _groups = groups;
        _extra = extra;
        _rest = rest;
    }

    /// <summary>The plan for <paramref name="rows"/> rows (at least 1) in passes of at most about <paramref name="rowsPerPass"/>.</summary>
    public static PassPlan For(int rows, int rowsPerPass, long tinyMacs)
    {
        const int G = GemmSmall.DotRowGroup;
        int groups = rows / G, rest = rows % G;
        long byLength = ((long)rows + Math.Max(1, rowsPerPass) - 1) / Math.Max(1, rowsPerPass);
        long smallestGroups = Math.Max(0, tinyMacs) / G + 1;   // the fewest whole groups in a pass of more than tinyMacs rows
        int passes = (int)Math.Max(1, Math.Min(byLength, groups / smallestGroups));
        return new PassPlan(passes, groups / passes, groups % passes, rest);
    }

    /// <summary>How many passes.</summary>
    public int Passes { get; }

    /// <summary>Rows of pass <paramref name="pass"/>: the first passes take a group more when the groups do not share out evenly; the last takes the rest.</summary>
    public int Rows(int pass) =>
        (_groups + (pass < _extra ? 1 : 0)) * GemmSmall.DotRowGroup + (pass == Passes - 1 ? _rest : 0);

    /// <summary>The rows of the largest pass.</summary>
    public int LargestPass => Math.Max(Rows(0), Rows(Passes - 1));
}

/// <summary>A step's activation: h = f(z) over finished blocks (fused into the GEMM's output pass) or over the whole output.</summary>
public static class InferenceActivation
{
    /// <summary>Whether f can run on each GEMM block as it finishes (element-wise and exact on any piece).</summary>
    public static bool Fuses<T>(Activation<T> f) where T : unmanaged, IFloatingPointIeee754<T> =>
        f.IsElementwise && f.ForwardIsPiecewiseExact;

    /// <summary>h = f(z) on all of z, as the tape's activation op runs it (rows <paramref name="cols"/> wide).</summary>
    public static void Apply<T>(Activation<T> f, ReadOnlySpan<T> z, Span<T> h, int cols) where T : unmanaged, IFloatingPointIeee754<T> =>
        f.Forward(z, h, cols);
}

/// <summary>h = f(z) on each finished block of a product (rows of <c>cols</c> values), set for one call by its thread.</summary>
internal sealed unsafe class ActivationBlockFinish<T> : IGemmBlockFinish where T : unmanaged, IFloatingPointIeee754<T>
{
    private Activation<T>? _f;
    private T* _z, _h;
    private int _cols;

    public void Set(Activation<T> f, T* z, T* h, int cols) { _f = f; _z = z; _h = h; _cols = cols; }

    public void Clear() { _f = null; _z = _h = null; }

    public void Finish(int i0, int i1, int j0, int j1)
    {
        int w = j1 - j0;
        for (int r = i0; r < i1; r++)
            _f!.Forward(new ReadOnlySpan<T>(_z + (long)r * _cols + j0, w), new Span<T>(_h + (long)r * _cols + j0, w), w);
    }
}
