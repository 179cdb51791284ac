using System.Globalization;
using System.Numerics;
using System.Text;
using Backprop.Nn;
using Backprop.Training;

namespace Backprop.Models;

/// <summary>
/// Describes a network layer by layer, then makes a <see cref="Model{T}"/> for a task with its weights initialised. It
/// writes an <see cref="ArchitectureSpec"/> (the CLI's <c>--arch</c> string, see <see cref="Architecture"/>), so a
/// model built here and the CLI's run of the same spec and seed start from the same weights.
/// </summary>
/// <example>
/// <code>
/// var model = Model.Build().Input(4).Dense(16, "relu").Dropout(0.1).LayerNorm().Output(3).ForClassification();
/// </code>
/// </example>
public sealed class ModelBuilder
{
    private readonly StringBuilder _spec = new();
    private string[]? _labelNames;
    private int _seed;
    private string _init = "default";
    private Catalog _catalog = Nn.Catalog.Default;

    /// <summary>The network so far as an architecture spec, e.g. "4-16:relu:drop0.1:ln-3".</summary>
    public string Architecture => _spec.ToString();

    /// <summary>Starts the network: the number of features each row has. Comes first, once.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="features"/> is not positive.</exception>
    public ModelBuilder Input(int features)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(features);
        if (_spec.Length > 0) throw new InvalidOperationException($"Input({features}): the network already starts with {_spec}");
        _spec.Append(features.ToString(CultureInfo.InvariantCulture));
        return this;
    }

    /// <summary>A dense layer (y = x·Wᵀ + b) with <paramref name="units"/> outputs, then <paramref name="activation"/> (null: linear).</summary>
    /// <param name="units">The layer's outputs.</param>
    /// <param name="activation">An activation's name (relu, tanh, sigmoid, gelu, …); null: none.</param>
    public ModelBuilder Dense(int units, string? activation = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(units);
        Started(nameof(Dense));
        _spec.Append('-').Append(units.ToString(CultureInfo.InvariantCulture));
        return activation is null ? this : Activation(activation);
    }

    /// <summary>An activation on what the network gives so far (e.g. after a norm: <c>Dense(16).LayerNorm().Activation("relu")</c>).</summary>
    /// <exception cref="ArgumentException">No activation has that name.</exception>
    public ModelBuilder Activation(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Started(nameof(Activation));
        if (_catalog.Activations.Find(name) is null)
            throw new ArgumentException($"unknown activation '{name}' (known: {string.Join(", ", _catalog.Activations.Names)})", nameof(name));
        _spec.Append(':').Append(name);
        return this;
    }

    /// <summary>A dropout layer: in training, each value is zeroed with probability <paramref name="p"/> and the rest scaled by 1/(1 − p).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> is outside [0, 1).</exception>
    public ModelBuilder Dropout(double p)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "the dropout probability must be in [0, 1)");
        Started(nameof(Dropout));
        _spec.Append(":drop").Append(p.ToString("R", CultureInfo.InvariantCulture));
        return this;
    }

    /// <summary>A layer norm over the current width (eps 1e-5, with a scale and a shift).</summary>
    public ModelBuilder LayerNorm()
    {
        Started(nameof(LayerNorm));
        _spec.Append(":ln");
        return this;
    }

    /// <summary>A batch norm over the current width (eps 1e-5, momentum 0.1, running statistics for prediction).</summary>
    public ModelBuilder BatchNorm()
    {
        Started(nameof(BatchNorm));
        _spec.Append(":bn");
        return this;
    }

    /// <summary>The output layer: a linear dense layer with one output per class, target or label (the task's loss reads them).</summary>
    public ModelBuilder Output(int outputs) => Dense(outputs);

    /// <summary>The output layer, one output per name: the class names (classification) or the target or label names.</summary>
    public ModelBuilder Output(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Length == 0) throw new ArgumentException("name at least one output", nameof(names));
        Model<float>.CheckLabelNames(names, nameof(names));
        _labelNames = [.. names];
        return Dense(names.Length);
    }

    /// <summary>Seeds the weights' initialisation (default 0; the CLI's <c>--seed</c> seeds both this and the fit).</summary>
    public ModelBuilder Seed(int seed)
    {
        _seed = seed;
        return this;
    }

    /// <summary>The initialisation: default (He for ReLU-like activations, Xavier otherwise), xavier_uniform, xavier_normal, he_uniform or he_normal.</summary>
    /// <exception cref="ArgumentException">No initialisation has that name.</exception>
    public ModelBuilder Init(string init)
    {
        Initializers.Parse(init);
        _init = init;
        return this;
    }

    /// <summary>Where layer kinds and activations are looked up (default <see cref="Nn.Catalog.Default"/>): add your own kinds to it.</summary>
    public ModelBuilder Catalog(Catalog catalog)
    {
        _catalog = catalog ?? throw new ArgumentNullException(nameof(catalog));
        return this;
    }

    /// <summary>A float32 classifier: softmax cross-entropy over the outputs, one per class.</summary>
    public Model<float> ForClassification() => ForClassification<float>();

    /// <summary>A classifier in precision <typeparamref name="T"/> (float or double).</summary>
    public Model<T> ForClassification<T>() where T : unmanaged, IFloatingPointIeee754<T> => For<T>(TrainingTask.Classification);

    /// <summary>A float32 regression: mean squared error on standardised targets, one output per target.</summary>
    public Model<float> ForRegression() => ForRegression<float>();

    /// <summary>A regression in precision <typeparamref name="T"/>.</summary>
    public Model<T> ForRegression<T>() where T : unmanaged, IFloatingPointIeee754<T> => For<T>(TrainingTask.Regression);

    /// <summary>A float32 multi-label model: an independent sigmoid (binary cross-entropy) per output.</summary>
    public Model<float> ForMultiLabel() => ForMultiLabel<float>();

    /// <summary>A multi-label model in precision <typeparamref name="T"/>.</summary>
    public Model<T> ForMultiLabel<T>() where T : unmanaged, IFloatingPointIeee754<T> => For<T>(TrainingTask.MultiLabel);

    /// <summary>The model for <paramref name="task"/>, its weights initialised from the seed.</summary>
    /// <exception cref="ArgumentException">The network is not complete or not valid (the message names the fault).</exception>
    public Model<T> For<T>(TrainingTask task) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(task);
        if (_spec.Length == 0) throw new InvalidOperationException("the network is empty: start it with Input(features)");
        if (!_spec.ToString().Contains('-'))
            throw new InvalidOperationException($"the network {_spec} has no layer: end it with Output(outputs)");
        var spec = ArchitectureSpec.Parse(_spec.ToString(), _catalog);
        if (spec.Layers[^1].Kind != DenseKind.KindName || spec.Layers[^1].Activation != "identity")
            throw new InvalidOperationException($"the network {spec} must end with a linear dense layer (Output(n)): the task's loss reads its raw outputs");
        var network = Initializers.Network<T>(spec, _seed, Initializers.Parse(_init), _catalog);
        return new Model<T>(network, task, _labelNames) { Catalog = _catalog };
    }

    private void Started(string method)
    {
        if (_spec.Length == 0) throw new InvalidOperationException($"{method}: start the network with Input(features)");
    }

    /// <summary>The architecture spec so far.</summary>
    public override string ToString() => Architecture;
}
