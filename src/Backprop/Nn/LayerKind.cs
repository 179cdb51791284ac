using System.Numerics;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Nn;

/// <summary>
/// What a layer is made from: sizes, whether it has a bias (for a norm layer: its affine scale and shift), and the
/// values of its kind's <see cref="LayerKind.Settings"/> (absent ones take their defaults).
/// </summary>
public readonly record struct LayerShape(int Inputs, int Outputs, bool Bias)
{
    /// <summary>Numbers and flags (1 or 0) by setting name, e.g. eps; null: all defaults.</summary>
    public IReadOnlyDictionary<string, double>? Settings { get; init; }

    /// <summary>Batch × features matrices by setting name (a dropout layer's fixed mask); null: none.</summary>
    public IReadOnlyDictionary<string, Tensor<double>>? Matrices { get; init; }

    /// <summary>The setting <paramref name="name"/>, or <paramref name="fallback"/>.</summary>
    public double Setting(string name, double fallback) => Settings is not null && Settings.TryGetValue(name, out var v) ? v : fallback;
}

/// <summary>How a <see cref="LayerSetting"/> is written.</summary>
public enum LayerSettingType
{
    /// <summary>A number (eps, momentum, p).</summary>
    Number,
    /// <summary>true or false, stored as 1 or 0 (batch norm's training).</summary>
    Flag,
    /// <summary>A batch × features matrix (dropout's fixed mask) that a problem gives with its batch.</summary>
    BatchMatrix,
}

/// <summary>
/// A value a layer kind reads besides its tensors, with its default and its rule: problem files read it by
/// <see cref="Name"/>, model files keep it, and summaries show it.
/// </summary>
public sealed record LayerSetting(string Name, LayerSettingType Type, double Default, string Meaning)
{
    /// <summary>Null for a valid value, else why not (e.g. "must be in [0, 1)").</summary>
    public Func<double, string?>? Check { get; init; }

    /// <summary>Whether model files keep it: a flag of the moment (training) and per-batch data (a mask) are not the model's.</summary>
    public bool Saved { get; init; } = true;
}

/// <summary>
/// One kind of layer as files and importers name it: how to make an empty one (whose parameters and buffers a loader
/// then fills by name) and which PyTorch module it imports from.
/// </summary>
public abstract class LayerKind : INamedKind
{
    /// <summary>The name written to model files, e.g. "dense".</summary>
    public abstract string Name { get; }

    /// <summary>The PyTorch module class whose state-dict entries this kind imports (e.g. "Linear"); null if none.</summary>
    public virtual string? TorchModule => null;

    /// <summary>The settings the kind reads besides its tensors (<see cref="LayerShape.Settings"/>).</summary>
    public virtual IReadOnlyList<LayerSetting> Settings => [];

    /// <summary>Whether its output has as many features as its input (norm and dropout layers): files need not say "outputs".</summary>
    public virtual bool KeepsWidth => false;

    /// <summary>Whether the kind takes an activation (dropout does not).</summary>
    public virtual bool TakesActivation => true;

    /// <summary>
    /// Whether the kind's parameters come as a pair that <see cref="LayerShape.Bias"/> switches on and off together (a
    /// norm layer's weight and bias), rather than a weight that is always there and an optional bias.
    /// </summary>
    public virtual bool AffinePair => false;

    /// <summary>
    /// Floating-point operations per sample of the layer's own forward pass at inference, its activation left out
    /// (<see cref="ModelSummary"/> counts that); <see cref="FlopsRule"/> says how they are counted.
    /// </summary>
    public virtual long ForwardFlops(LayerShape shape) => 0;

    /// <summary>How <see cref="ForwardFlops"/> counts, in a few words for summaries.</summary>
    public virtual string FlopsRule => "not counted";

    /// <summary>
    /// A layer of this kind with the given shape and activation, parameters zero (a loader fills them). Throws
    /// <see cref="ArgumentException"/> for a shape the kind cannot have.
    /// </summary>
    public abstract ILayer<T> Create<T>(LayerShape shape, Activation<T> activation) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>The kind's <see cref="Name"/>.</summary>
    public override string ToString() => Name;
}

/// <summary>The fully connected layer's kind.</summary>
public sealed class DenseKind : LayerKind
{
    /// <summary>The dense kind's name in files: "dense".</summary>
    public const string KindName = "dense";
    /// <inheritdoc/>
    public override string Name => KindName;
    /// <summary>"Linear": PyTorch's nn.Linear stores its weight out × in, as <see cref="DenseLayer{T}"/> does.</summary>
    public override string TorchModule => "Linear";
    /// <summary>2·in·out for the product, plus out for the bias when there is one.</summary>
    public override long ForwardFlops(LayerShape shape) => 2L * shape.Inputs * shape.Outputs + (shape.Bias ? shape.Outputs : 0);
    /// <inheritdoc/>
    public override string FlopsRule => "2·in·out (multiply and add) + out for the bias";
    /// <summary>A <see cref="DenseLayer{T}"/> of zeros, in → out, with a bias when <see cref="LayerShape.Bias"/>.</summary>
    public override ILayer<T> Create<T>(LayerShape shape, Activation<T> activation) =>
        new DenseLayer<T>(shape.Inputs, shape.Outputs, activation, shape.Bias);
}

/// <summary>
/// The layer kinds that files name, immutable: <see cref="Default"/> holds the built-ins; <see cref="KindRegistry{TKind, TSelf}.With(TKind)"/> returns a
/// new registry with one more (or a replaced) kind.
/// </summary>
public sealed class LayerKindRegistry : KindRegistry<LayerKind, LayerKindRegistry>
{
    private LayerKindRegistry(IEnumerable<LayerKind> kinds) : base(kinds) { }

    /// <inheritdoc/>
    protected override LayerKindRegistry WithKinds(IEnumerable<LayerKind> kinds) => new(kinds);

    /// <summary>The built-ins, in this order: dense, layernorm, batchnorm, dropout.</summary>
    public static LayerKindRegistry Default { get; } = new([new DenseKind(), new LayerNormKind(), new BatchNormKind(), new DropoutKind()]);

    /// <summary>The kind that imports PyTorch's <paramref name="module"/> (e.g. "Linear"), or null.</summary>
    public LayerKind? ForTorchModule(string module) => Kinds.FirstOrDefault(k => k.TorchModule == module);
}

/// <summary>
/// Every registry a reader of names needs, passed together: activations, losses and layer kinds. <see cref="Default"/>
/// holds the built-ins; the <c>With</c> methods return a new catalog.
/// </summary>
public sealed record Catalog(ActivationRegistry Activations, LossRegistry Losses, LayerKindRegistry Layers)
{
    /// <summary>The built-in activations, losses and layer kinds.</summary>
    public static Catalog Default { get; } = new(ActivationRegistry.Default, LossRegistry.Default, LayerKindRegistry.Default);

    /// <summary>A catalog whose activations also hold <paramref name="activation"/> (or it replaces the one of its name).</summary>
    public Catalog With(ActivationKind activation) => this with { Activations = Activations.With(activation) };
    /// <summary>A catalog whose losses also hold <paramref name="loss"/> (or it replaces the one of its name).</summary>
    public Catalog With(LossKind loss) => this with { Losses = Losses.With(loss) };
    /// <summary>A catalog whose layer kinds also hold <paramref name="layer"/> (or it replaces the one of its name).</summary>
    public Catalog With(LayerKind layer) => this with { Layers = Layers.With(layer) };
}
