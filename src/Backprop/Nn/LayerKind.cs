using System.Numerics;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Nn;

/// <summary>The shape facts a model file stores for every layer: sizes and whether it has a bias.</summary>
public readonly record struct LayerShape(int Inputs, int Outputs, bool Bias);

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

    /// <summary>
    /// A layer of this kind with the given shape and activation, parameters zero (a loader fills them). Throws
    /// <see cref="ArgumentException"/> for a shape the kind cannot have.
    /// </summary>
    public abstract ILayer<T> Create<T>(LayerShape shape, Activation<T> activation) where T : unmanaged, IFloatingPointIeee754<T>;

    public override string ToString() => Name;
}

/// <summary>The fully connected layer's kind.</summary>
public sealed class DenseKind : LayerKind
{
    public const string KindName = "dense";
    public override string Name => KindName;
    public override string TorchModule => "Linear";
    public override ILayer<T> Create<T>(LayerShape shape, Activation<T> activation) =>
        new DenseLayer<T>(shape.Inputs, shape.Outputs, activation, shape.Bias);
}

/// <summary>
/// The layer kinds that files name, immutable: <see cref="Default"/> holds the built-ins; <see cref="With"/> returns a
/// new registry with one more (or a replaced) kind.
/// </summary>
public sealed class LayerKindRegistry : KindRegistry<LayerKind, LayerKindRegistry>
{
    private LayerKindRegistry(IEnumerable<LayerKind> kinds) : base(kinds) { }

    protected override LayerKindRegistry WithKinds(IEnumerable<LayerKind> kinds) => new(kinds);

    public static LayerKindRegistry Default { get; } = new([new DenseKind()]);

    /// <summary>The kind that imports PyTorch's <paramref name="module"/> (e.g. "Linear"), or null.</summary>
    public LayerKind? ForTorchModule(string module) => Kinds.FirstOrDefault(k => k.TorchModule == module);
}

/// <summary>
/// Every registry a reader of names needs, passed together: activations, losses and layer kinds. <see cref="Default"/>
/// holds the built-ins; the <c>With</c> methods return a new catalog.
/// </summary>
public sealed record Catalog(ActivationRegistry Activations, LossRegistry Losses, LayerKindRegistry Layers)
{
    public static Catalog Default { get; } = new(ActivationRegistry.Default, LossRegistry.Default, LayerKindRegistry.Default);

    public Catalog With(ActivationKind activation) => this with { Activations = Activations.With(activation) };
    public Catalog With(LossKind loss) => this with { Losses = Losses.With(loss) };
    public Catalog With(LayerKind layer) => this with { Layers = Layers.With(layer) };
}
