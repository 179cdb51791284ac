using System.Numerics;
using Backprop.Kernels;
using Backprop.Core;
using Backprop.Autodiff;

namespace Backprop.Training;

/// <summary>
/// Updates parameters from their gradients. State tensors are allocated once, so a step allocates nothing;
/// they are exposed by name for checkpoints.
/// </summary>
public abstract class Optimizer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>An optimizer of <paramref name="parameters"/> (updated in place from their gradients) at learning rate <paramref name="lr"/>.</summary>
    protected Optimizer(IReadOnlyList<Var<T>> parameters, double lr)
    {
        Parameters = parameters;
        LearningRate = lr;
    }

    /// <summary>The parameters it updates, in the order their state tensors are numbered.</summary>
    public IReadOnlyList<Var<T>> Parameters { get; }
    /// <summary>The learning rate of the next step (schedules set it).</summary>
    public double LearningRate { get; set; }
    /// <summary>Steps taken so far.</summary>
    public long StepCount { get; set; }
    /// <summary>Its kind's name in <see cref="OptimizerRegistry"/>, as checkpoints record it (e.g. "adam").</summary>
    public abstract string Name { get; }

    /// <summary>
    /// What the update runs on (its threads split large models): the context given at creation
    /// (<see cref="OptimizerKind.Create{T}(IReadOnlyList{Var{T}}, OptimizerSettings, ComputeContext?)"/>), else
    /// <see cref="ComputeContext.Default"/>. Never null.
    /// </summary>
    public ComputeContext Context
    {
        get => _context;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            _context = value;
        }
    }

    private ComputeContext _context = ComputeContext.Default;

    private ParallelUpdate? _parallel;
    private int _totalElements = -1;

    /// <summary>
    /// One update of every parameter. The update is element-wise, so large models split each tensor between the
    /// kernel threads (it streams the parameters, gradients and state through memory once).
    /// </summary>
    public void Step() => Step(0, int.MaxValue);

    /// <summary>
    /// One update of the elements [<paramref name="flatStart"/>, <paramref name="flatStart"/> + <paramref name="flatCount"/>)
    /// of the parameters laid end to end in their order (the order of the flat gradient buffer), leaving the others and
    /// their state as they are: a member's share of the update in data-parallel training with a sharded optimizer
    /// (<see cref="DataParallel{T}"/>). The step count advances as for a whole step.
    /// </summary>
    public void Step(int flatStart, int flatCount)
    {
        StepCount++;
        _nonFiniteGradient ??= new bool[Parameters.Count];
        Array.Clear(_nonFiniteGradient);
        if (_totalElements < 0) _totalElements = Parameters.Sum(p => p.Value.Length);
        int lo = Math.Clamp(flatStart, 0, _totalElements), hi = (int)Math.Min(_totalElements, (long)lo + Math.Max(0, flatCount));
        var context = Context;
        int parts = Math.Min(context.Threads, (hi - lo) / ParallelUpdate.MinElementsPerPart);
        var parallel = _parallel ??= new ParallelUpdate(this);
        (parallel.Start, parallel.End) = (lo, hi);
        if (parts > 1 && context.Pool.TryRun(parallel, parts)) return;
        parallel.Execute(0, 1);
    }

    private bool[]? _nonFiniteGradient;

    /// <summary>The first parameter whose gradient held NaN or ±Inf in the last step, or -1 (checked in the update's own pass).</summary>
    public int FirstNonFiniteGradient => _nonFiniteGradient is null ? -1 : Array.IndexOf(_nonFiniteGradient, true);

    private void Run(int index, int start, int length)
    {
        if (!Update(index, start, length)) _nonFiniteGradient![index] = true;
    }

    /// <summary>Updates elements [start, start + length) of parameter <paramref name="index"/> and its state; false if a gradient was not finite.</summary>
    protected abstract bool Update(int index, int start, int length);

    /// <summary>Elements [start, start + length) of parameter <paramref name="i"/>'s value, to update in place.</summary>
    protected Span<T> ParameterSlice(int i, int start, int length) => Parameters[i].Value.Data.Slice(start, length);
    /// <summary>Elements [start, start + length) of parameter <paramref name="i"/>'s gradient.</summary>
    protected ReadOnlySpan<T> GradientSlice(int i, int start, int length) => Parameters[i].Grad.Data.Slice(start, length);

    private sealed class ParallelUpdate(Optimizer<T> optimizer) : WorkItem
    {
        public const int MinElementsPerPart = 1 << 15;

        /// <summary>The flat range of elements to update.</summary>
        public int Start, End;

        public override void Execute(int part, int parts)
        {
            var ps = optimizer.Parameters;
            int offset = 0;
            for (int i = 0; i < ps.Count; i++)
            {
                int length = ps[i].Value.Length;
                int lo = Math.Max(Start, offset) - offset, hi = Math.Min(End, offset + length) - offset;
                offset += length;
                int n = hi - lo;
                if (n <= 0) continue;
                // whole vectors per part, so every part but the last runs the vectorised loop only
                int chunk = (n / parts + 15) & ~15;
                int start = Math.Min(n, part * chunk), end = part == parts - 1 ? n : Math.Min(n, start + chunk);
                if (end > start) optimizer.Run(i, lo + start, end - start);
            }
        }
    }

    /// <summary>Named state tensors (e.g. "m.3"), for checkpoints.</summary>
    public abstract IEnumerable<(string Name, Tensor<T> Tensor)> State();

    /// <summary>One zeroed state tensor per parameter, of its shape.</summary>
    protected static Tensor<T>[] Buffers(IReadOnlyList<Var<T>> ps) => ps.Select(p => new Tensor<T>(p.Value.ShapeArray)).ToArray();

    /// <summary>An optimizer of the <see cref="OptimizerRegistry.Default"/> registry by name (see <see cref="OptimizerKind.Create{T}(IReadOnlyList{Var{T}}, OptimizerSettings, ComputeContext?)"/>).</summary>
    /// <param name="name">The kind's name: sgd, adam, adamw or rmsprop.</param>
    /// <param name="parameters">The parameters to update.</param>
    /// <param name="lr">The learning rate.</param>
    /// <param name="momentum">SGD's momentum (the other kinds ignore it).</param>
    /// <param name="nesterov">Whether SGD's momentum is Nesterov's.</param>
    /// <param name="weightDecay">Null: the kind's default (0.01 for adamw, 0 for the others).</param>
    /// <param name="context">What its update runs on; null means <see cref="ComputeContext.Default"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a known optimizer.</exception>
    public static Optimizer<T> Create(string name, IReadOnlyList<Var<T>> parameters, double lr,
        double momentum = 0.9, bool nesterov = false, double? weightDecay = null, ComputeContext? context = null) =>
        OptimizerRegistry.Default.Get(name).Create(parameters, new OptimizerSettings(lr, momentum, nesterov, weightDecay), context);
}

/// <summary>SGD with momentum, Nesterov and weight decay, as torch.optim.SGD defines them.</summary>
public sealed class Sgd<T>(IReadOnlyList<Var<T>> parameters, double lr, double momentum = 0, bool nesterov = false, double weightDecay = 0)
    : Optimizer<T>(parameters, lr) where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>[] _buf = Buffers(parameters);
    /// <summary>The momentum factor μ: buf ← μ·buf + g (0: plain SGD).</summary>
    public double Momentum { get; } = momentum;
    /// <summary>Whether the step uses g + μ·buf (Nesterov) rather than buf.</summary>
    public bool Nesterov { get; } = nesterov;
    /// <summary>The L2 weight decay λ added to the gradient: g ← g + λ·w.</summary>
    public double WeightDecay { get; } = weightDecay;
    /// <inheritdoc/>
    public override string Name => "sgd";

    /// <inheritdoc/>
    protected override bool Update(int i, int start, int length) =>
        OptimizerKernels.Sgd(ParameterSlice(i, start, length), GradientSlice(i, start, length), _buf[i].Data.Slice(start, length), T.CreateChecked(LearningRate), T.CreateChecked(Momentum),
            T.CreateChecked(WeightDecay), Nesterov, firstStep: StepCount == 1 || Momentum == 0);

    /// <inheritdoc/>
    public override IEnumerable<(string, Tensor<T>)> State() => _buf.Select((b, i) => ($"momentum.{i}", b));
}

/// <summary>Adam (L2 weight decay added to the gradient) or AdamW (decoupled weight decay).</summary>
public sealed class Adam<T>(IReadOnlyList<Var<T>> parameters, double lr, double beta1 = 0.9, double beta2 = 0.999,
    double eps = 1e-8, double weightDecay = 0, bool decoupled = false)
    : Optimizer<T>(parameters, lr) where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>[] _m = Buffers(parameters);
    private readonly Tensor<T>[] _v = Buffers(parameters);
    /// <inheritdoc/>
    public override string Name => decoupled ? "adamw" : "adam";

    /// <inheritdoc/>
    protected override bool Update(int i, int start, int length)
    {
        double bc1 = 1 - Math.Pow(beta1, StepCount), bc2 = 1 - Math.Pow(beta2, StepCount);
        return OptimizerKernels.Adam(ParameterSlice(i, start, length), GradientSlice(i, start, length), _m[i].Data.Slice(start, length), _v[i].Data.Slice(start, length), T.CreateChecked(LearningRate), T.CreateChecked(beta1),
            T.CreateChecked(beta2), T.CreateChecked(eps), T.CreateChecked(bc1), T.CreateChecked(bc2),
            decoupled ? T.Zero : T.CreateChecked(weightDecay), decoupled ? T.CreateChecked(weightDecay) : T.Zero);
    }

    /// <inheritdoc/>
    public override IEnumerable<(string, Tensor<T>)> State() =>
        _m.Select((b, i) => ($"m.{i}", b)).Concat(_v.Select((b, i) => ($"v.{i}", b)));
}

/// <summary>RMSprop as torch.optim.RMSprop defines it (no momentum, not centred): s ← α·s + (1 − α)·g², w ← w − lr·g / (√s + ε).</summary>
/// <param name="parameters">The parameters to update.</param>
/// <param name="lr">The learning rate.</param>
/// <param name="alpha">The smoothing constant α of the squared-gradient average.</param>
/// <param name="eps">ε, added to √s for numerical stability.</param>
/// <param name="weightDecay">The L2 weight decay λ added to the gradient.</param>
public sealed class RmsProp<T>(IReadOnlyList<Var<T>> parameters, double lr, double alpha = 0.99, double eps = 1e-8, double weightDecay = 0)
    : Optimizer<T>(parameters, lr) where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>[] _s = Buffers(parameters);
    /// <inheritdoc/>
    public override string Name => "rmsprop";

    /// <inheritdoc/>
    protected override bool Update(int i, int start, int length) =>
        OptimizerKernels.RmsProp(ParameterSlice(i, start, length), GradientSlice(i, start, length), _s[i].Data.Slice(start, length), T.CreateChecked(LearningRate), T.CreateChecked(alpha), T.CreateChecked(eps), T.CreateChecked(weightDecay));

    /// <inheritdoc/>
    public override IEnumerable<(string, Tensor<T>)> State() => _s.Select((b, i) => ($"square_avg.{i}", b));
}

/// <summary>Learning rate as a function of the step: constant, step decay, cosine, each with optional linear warm-up.</summary>
public sealed record LrSchedule(string Kind, double BaseLr, long TotalSteps, long WarmupSteps = 0, long StepSize = 0, double Gamma = 0.1)
{
    /// <summary>The schedules <see cref="At"/> knows, by name: the one list that jobs are validated and options parsed against.</summary>
    public static System.Collections.Immutable.ImmutableArray<string> Kinds { get; } = ["constant", "step", "cosine"];

    /// <summary>The learning rate of step <paramref name="step"/> (from 0): during warm-up BaseLr·(step + 1)/WarmupSteps; then
    /// constant, step (BaseLr·Gamma^⌊s/StepSize⌋) or cosine (BaseLr·½(1 + cos(π·s/total))), s counted from the warm-up's end.</summary>
    public double At(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps) return BaseLr * (step + 1) / WarmupSteps;
        long s = step - WarmupSteps, total = Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            "step" => BaseLr * Math.Pow(Gamma, StepSize > 0 ? s / StepSize : 0),
            "cosine" => BaseLr * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(s, total) / total)),
            _ => BaseLr,
        };
    }
}

/// <summary>Gradient clipping by the global L2 norm over all parameters, as torch.nn.utils.clip_grad_norm_.</summary>
public static class GradientClipping
{
    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double ClipGlobalNorm<T>(IReadOnlyList<Var<T>> parameters, double maxNorm) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double sq = 0;
        for (int i = 0; i < parameters.Count; i++)
            sq += double.CreateTruncating(System.Numerics.Tensors.TensorPrimitives.SumOfSquares<T>(parameters[i].Grad.Data));
        double norm = Math.Sqrt(sq);
        if (maxNorm > 0 && norm > maxNorm)
        {
            T scale = T.CreateChecked(maxNorm / (norm + 1e-6));
            for (int i = 0; i < parameters.Count; i++)
                System.Numerics.Tensors.TensorPrimitives.Multiply(parameters[i].Grad.Data, scale, parameters[i].Grad.Data);
        }
        return norm;
    }
}
