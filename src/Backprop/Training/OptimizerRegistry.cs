using System.Collections.Immutable;
using System.Numerics;
using Backprop.Autodiff;
using Backprop.Core;
using Backprop.Kernels;

namespace Backprop.Training;

/// <summary>The hyper-parameters a run gives an optimizer; each kind reads the ones it lists in <see cref="OptimizerKind.HyperParameters"/>.</summary>
/// <param name="LearningRate">The step size of the first step (a schedule changes it afterwards).</param>
/// <param name="Momentum">SGD's momentum factor, in [0, 1); the other kinds ignore it.</param>
/// <param name="Nesterov">Whether SGD's momentum is Nesterov's; the other kinds ignore it.</param>
/// <param name="WeightDecay">Null: the kind's own <see cref="OptimizerKind.DefaultWeightDecay"/>.</param>
public sealed record OptimizerSettings(double LearningRate, double Momentum = 0.9, bool Nesterov = false, double? WeightDecay = null);

/// <summary>
/// One kind of optimizer and its facts: its name, the weight decay it takes when none is given (torch.optim's
/// default), the hyper-parameters it reads and the names of its state tensors (checkpoints hold them as
/// "optimizer.{state}.{parameter index}"). Adding an optimizer is one <see cref="Optimizer{T}"/> class, one kind and
/// one line in <see cref="OptimizerRegistry.Default"/> (or <see cref="KindRegistry{TKind, TSelf}.With(TKind)"/> outside the library).
/// </summary>
public abstract class OptimizerKind : INamedKind
{
    /// <summary>The name runs, checkpoints and <see cref="Optimizer{T}.Name"/> give it, e.g. "adamw".</summary>
    public abstract string Name { get; }
    /// <summary>The weight decay when none is given, as torch.optim defines it (0.01 for AdamW, 0 for the others).</summary>
    public virtual double DefaultWeightDecay => 0;
    /// <summary>The hyper-parameters this kind reads, by their <see cref="OptimizerSettings"/> names in snake case.</summary>
    public abstract ImmutableArray<string> HyperParameters { get; }
    /// <summary>The state it keeps per parameter, e.g. "m" and "v" for Adam.</summary>
    public abstract ImmutableArray<string> StateNames { get; }

    /// <summary>A new optimizer of this kind, on <see cref="ComputeContext.Default"/> (the overload with a context gives it one).</summary>
    public abstract Optimizer<T> Create<T>(IReadOnlyList<Var<T>> parameters, OptimizerSettings settings) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>A new optimizer of this kind whose update runs on <paramref name="context"/> (null: <see cref="ComputeContext.Default"/>).</summary>
    public Optimizer<T> Create<T>(IReadOnlyList<Var<T>> parameters, OptimizerSettings settings, ComputeContext? context)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var optimizer = Create(parameters, settings);
        optimizer.Context = context ?? ComputeContext.Default;
        return optimizer;
    }

    /// <summary>The weight decay <paramref name="s"/> gives, or this kind's <see cref="DefaultWeightDecay"/> when it gives none.</summary>
    protected double WeightDecayOf(OptimizerSettings s) => s.WeightDecay ?? DefaultWeightDecay;

    /// <summary>The kind's <see cref="Name"/>.</summary>
    public override string ToString() => Name;
}

/// <summary>SGD: <see cref="Sgd{T}"/>.</summary>
public sealed class SgdKind : OptimizerKind
{
    /// <inheritdoc/>
    public override string Name => "sgd";
    /// <inheritdoc/>
    public override ImmutableArray<string> HyperParameters { get; } = ["learning_rate", "momentum", "nesterov", "weight_decay"];
    /// <inheritdoc/>
    public override ImmutableArray<string> StateNames { get; } = ["momentum"];
    /// <inheritdoc/>
    public override Optimizer<T> Create<T>(IReadOnlyList<Var<T>> parameters, OptimizerSettings s) =>
        new Sgd<T>(parameters, s.LearningRate, s.Momentum, s.Nesterov, WeightDecayOf(s));
}

/// <summary>Adam with L2 weight decay: <see cref="Adam{T}"/>.</summary>
public sealed class AdamKind : OptimizerKind
{
    /// <inheritdoc/>
    public override string Name => "adam";
    /// <inheritdoc/>
    public override ImmutableArray<string> HyperParameters { get; } = ["learning_rate", "weight_decay"];
    /// <inheritdoc/>
    public override ImmutableArray<string> StateNames { get; } = ["m", "v"];
    /// <inheritdoc/>
    public override Optimizer<T> Create<T>(IReadOnlyList<Var<T>> parameters, OptimizerSettings s) =>
        new Adam<T>(parameters, s.LearningRate, weightDecay: WeightDecayOf(s), decoupled: false);
}

/// <summary>AdamW, Adam with decoupled weight decay: <see cref="Adam{T}"/>.</summary>
public sealed class AdamWKind : OptimizerKind
{
    /// <inheritdoc/>
    public override string Name => "adamw";
    /// <inheritdoc/>
    public override double DefaultWeightDecay => 0.01;
    /// <inheritdoc/>
    public override ImmutableArray<string> HyperParameters { get; } = ["learning_rate", "weight_decay"];
    /// <inheritdoc/>
    public override ImmutableArray<string> StateNames { get; } = ["m", "v"];
    /// <inheritdoc/>
    public override Optimizer<T> Create<T>(IReadOnlyList<Var<T>> parameters, OptimizerSettings s) =>
        new Adam<T>(parameters, s.LearningRate, weightDecay: WeightDecayOf(s), decoupled: true);
}

/// <summary>RMSprop: <see cref="RmsProp{T}"/>.</summary>
public sealed class RmsPropKind : OptimizerKind
{
    /// <inheritdoc/>
    public override string Name => "rmsprop";
    /// <inheritdoc/>
    public override ImmutableArray<string> HyperParameters { get; } = ["learning_rate", "weight_decay"];
    /// <inheritdoc/>
    public override ImmutableArray<string> StateNames { get; } = ["square_avg"];
    /// <inheritdoc/>
    public override Optimizer<T> Create<T>(IReadOnlyList<Var<T>> parameters, OptimizerSettings s) =>
        new RmsProp<T>(parameters, s.LearningRate, weightDecay: WeightDecayOf(s));
}

/// <summary>
/// The optimizers a run may choose from, by name. Immutable: <see cref="KindRegistry{TKind, TSelf}.With(TKind)"/> gives a new registry with one more
/// kind, so a program can add its own optimizer without editing the library, and pass that registry where it trains.
/// </summary>
public sealed class OptimizerRegistry : KindRegistry<OptimizerKind, OptimizerRegistry>
{
    /// <summary>A registry of <paramref name="kinds"/>, in that order (the order <see cref="NamesText"/> lists them in).</summary>
    /// <exception cref="ArgumentException">Two kinds have the same name.</exception>
    public OptimizerRegistry(IEnumerable<OptimizerKind> kinds) : base(kinds) { }

    /// <inheritdoc/>
    protected override OptimizerRegistry WithKinds(IEnumerable<OptimizerKind> kinds) => new(kinds);

    /// <summary>The library's optimizers: one line each.</summary>
    public static OptimizerRegistry Default { get; } = new(
    [
        new SgdKind(),
        new AdamKind(),
        new AdamWKind(),
        new RmsPropKind(),
    ]);

    /// <summary>Whether a kind is named <paramref name="name"/>; <paramref name="kind"/> is it, or null when false.</summary>
    public bool TryGet(string name, out OptimizerKind kind) => (kind = Find(name)!) is not null;

    /// <summary>The kind named <paramref name="name"/>; an <see cref="ArgumentException"/> naming the known ones otherwise.</summary>
    public OptimizerKind Get(string name) => Find(name)
        ?? throw new ArgumentException($"unknown optimizer '{name}' (known: {string.Join(", ", Names)})");

    /// <summary>The names as a sentence list: "sgd, adam, adamw or rmsprop".</summary>
    public string NamesText(string conjunction = "or") =>
        Kinds.Count <= 1 ? string.Join("", Names) : $"{string.Join(", ", Names.SkipLast(1))} {conjunction} {Kinds[^1].Name}";
}
