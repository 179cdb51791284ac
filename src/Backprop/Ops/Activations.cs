using System.Collections.Immutable;
using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Kernels;

namespace Backprop.Ops;

/// <summary>How a weight is drawn at the start: Glorot/Xavier for saturating activations, He/Kaiming for ReLU-like ones.</summary>
public enum InitKind
{
    /// <summary>The activation's <see cref="Activation{T}.PreferredInit"/>.</summary>
    Default,
    /// <summary>U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (Glorot and Bengio 2010; gain from <see cref="Activation{T}.InitGain"/>).</summary>
    XavierUniform,
    /// <summary>N(0, s²) with s = gain·√(2 / (fan_in + fan_out)).</summary>
    XavierNormal,
    /// <summary>U(−a, a) with a = √(6 / fan_in) (He et al. 2015, for ReLU-like units).</summary>
    HeUniform,
    /// <summary>N(0, s²) with s = √(2 / fan_in).</summary>
    HeNormal,
}

/// <summary>
/// An activation function: its forward map, its derivative, the formulas of both as printed by explain, and every
/// other fact the library needs about it (LaTeX, ONNX translation, preferred initialisation, what counts as a dead or
/// saturated unit). Element-wise except for softmax, which couples the entries of a row. The activations a name can
/// select are the entries of an <see cref="ActivationRegistry"/>.
/// </summary>
public abstract class Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The name used in problem files, model files and on the command line, e.g. "leaky_relu".</summary>
    public abstract string Name { get; }
    /// <summary>The symbol in derivations, e.g. "σ".</summary>
    public abstract string Symbol { get; }
    /// <summary>How prose names the activation's units, e.g. "ReLU" in "75% of layer-1 ReLU units are dead".</summary>
    public virtual string DisplayName => Name;
    /// <summary>The forward formula as explain prints it, e.g. "σ(z) = 1/(1 + e^(−z))".</summary>
    public abstract string Formula { get; }
    /// <summary>The derivative's formula as explain prints it, e.g. "σ′(z) = σ(z)·(1 − σ(z))".</summary>
    public abstract string DerivativeFormula { get; }
    /// <summary>Whether y_i depends on z_i alone; false for softmax, whose Jacobian couples a row (its backward is then not dy ⊙ f′(z)).</summary>
    public virtual bool IsElementwise => true;
    /// <summary>Whether f(z) = z, so that layers and exporters may skip it.</summary>
    public virtual bool IsIdentity => false;

    /// <summary>The activation's one numeric parameter (leaky_relu's slope, elu's alpha), if it has one.</summary>
    public virtual double? Parameter => null;

    /// <summary>
    /// The LaTeX for <see cref="Symbol"/> where the renderer must replace a word (e.g. "relu" → \operatorname{relu});
    /// null where the symbol needs no word (σ is one character, "id" is handled as a word of its own).
    /// </summary>
    public virtual string? LatexSymbol => Symbol.Length > 1 && Symbol.All(char.IsAsciiLetter) ? $"\\operatorname{{{Symbol}}}" : null;

    /// <summary>The initialisation <see cref="InitKind.Default"/> stands for: He for ReLU-like units (their gain assumes half are off).</summary>
    public virtual InitKind PreferredInit => InitKind.XavierUniform;

    /// <summary>The gain that Xavier initialisation multiplies its bound by (PyTorch's calculate_gain).</summary>
    public virtual double InitGain => 1.0;

    /// <summary>
    /// The largest value of f′ for a saturating activation (σ′ ≤ 0.25, tanh′ ≤ 1): a unit whose derivative is below 1%
    /// of it counts as saturated. Null for activations that do not saturate.
    /// </summary>
    public virtual double? MaxDerivative => null;

    /// <summary>Whether a unit with z ≤ 0 for a whole batch passes no gradient (a dead ReLU).</summary>
    public virtual bool CanDie => false;

    /// <summary>
    /// Whether <see cref="Forward"/> on any piece of a tensor gives the same bits as on the whole, so a fused layer
    /// may apply it block by block. False where TensorPrimitives does the work: it rounds spans shorter than a
    /// vector differently from long ones (measured: sigmoid and tanh on 1–3 floats).
    /// </summary>
    public virtual bool ForwardIsPiecewiseExact => IsElementwise;

    /// <summary>
    /// The epilogue a product's kernel can apply in registers to give exactly <see cref="Forward"/>'s bits, so that a
    /// compiled dense layer writes f(z) without z ever reaching memory; <see cref="GemmEpilogue.None"/> when there is none.
    /// </summary>
    public virtual Kernels.GemmEpilogue KernelEpilogue => Kernels.GemmEpilogue.None;

    /// <summary>Whether a dense layer may absorb dz = dh ⊙ f′(z) into its backward pass (element-wise activations only).</summary>
    public bool BackwardFuses => IsElementwise;

    /// <summary>y = f(z), row by row for row-coupled activations (rows of <paramref name="cols"/> entries).</summary>
    public abstract void Forward(ReadOnlySpan<T> z, Span<T> y, int cols);

    /// <summary>dz = dy ⊙ f′(z) (written, not accumulated), given z and y = f(z).</summary>
    public abstract void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols);

    /// <summary>f′(z) element by element, for element-wise activations (used by diagnostics and explain).</summary>
    public virtual void Derivative(ReadOnlySpan<T> z, ReadOnlySpan<T> y, Span<T> d)
    {
        Span<T> ones = d; // reuse d as the seed of ones
        ones.Fill(T.One);
        Backward(z, y, ones, d, z.Length);
    }

    /// <summary>The same activation (with the same parameter) in another precision.</summary>
    public abstract Activation<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut>;

    /// <summary>
    /// Adds the ONNX nodes of f applied to <paramref name="z"/> to <paramref name="graph"/>, the last one writing
    /// <paramref name="output"/>; intermediate values are named under <paramref name="prefix"/>. Returns the output's name.
    /// </summary>
    public virtual string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) =>
        throw new NotSupportedException($"activation '{Name}' has no ONNX translation");

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>The part of an ONNX graph under construction that layers and activations write their nodes into.</summary>
public interface IOnnxGraph
{
    /// <summary>The opset of the default domain the graph is written for.</summary>
    int Opset { get; }
    /// <summary>Adds one node; returns <paramref name="output"/>.</summary>
    string Node(string op, IReadOnlyList<string> inputs, string output, params OnnxAttribute[] attributes);
    /// <summary>A scalar float initializer, added once however often it is asked for; returns its name.</summary>
    string Constant(string name, float value);
    /// <summary>Adds a tensor as a float32 initializer of its own shape; returns its name.</summary>
    string Initializer<T>(string name, Tensor<T> value) where T : unmanaged, IFloatingPointIeee754<T>;
}

/// <summary>An ONNX node attribute: an integer or a float.</summary>
/// <param name="Name">The attribute's name, e.g. "alpha".</param>
/// <param name="IntValue">The value of an integer attribute; null for a float one.</param>
/// <param name="FloatValue">The value of a float attribute; null for an integer one.</param>
public readonly record struct OnnxAttribute(string Name, long? IntValue, float? FloatValue)
{
    /// <summary>An integer attribute (ONNX INT), e.g. Softmax's axis.</summary>
    public static OnnxAttribute Int(string name, long value) => new(name, value, null);
    /// <summary>A float attribute (ONNX FLOAT), e.g. LeakyRelu's alpha.</summary>
    public static OnnxAttribute Float(string name, float value) => new(name, null, value);
}

/// <summary>
/// One kind of activation as a name can select it: the names it answers to and how to make it in any precision.
/// Everything else about the activation is a fact of the <see cref="Activation{T}"/> it makes.
/// </summary>
public abstract class ActivationKind : INamedKind
{
    /// <summary>The canonical name, e.g. "leaky_relu".</summary>
    public abstract string Name { get; }
    /// <summary>Other names accepted where a user names an activation (never written to files).</summary>
    public virtual IReadOnlyList<string> Aliases => [];
    /// <summary>Whether a network may use it on a hidden layer (softmax couples the row: it is an output activation).</summary>
    public virtual bool IsHiddenChoice => true;
    /// <summary>The activation in precision <typeparamref name="T"/>; <paramref name="parameter"/> for those that take one (else ignored).</summary>
    public abstract Activation<T> Create<T>(double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T>;
    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>A kind from its name and a factory of its float64 instance.</summary>
    public static ActivationKind Of(string name, Func<double?, Activation<double>> make, bool hiddenChoice = true, params string[] aliases) =>
        new FactoryActivationKind(name, make, hiddenChoice, aliases);
}

/// <summary>
/// An activation kind from its name and a factory of its float64 instance (other precisions are <see cref="Activation{T}.Cast{TOut}"/>
/// of it): what a registry line needs, e.g. <c>ActivationKind.Of("relu", _ => new Relu&lt;double&gt;())</c>.
/// </summary>
public sealed class FactoryActivationKind(string name, Func<double?, Activation<double>> make, bool hiddenChoice, IReadOnlyList<string> aliases)
    : ActivationKind
{
    // Fields, not captured parameters: a registry is shared read-only state, and captured parameters are writable.
    private readonly string _name = name;
    private readonly Func<double?, Activation<double>> _make = make;
    private readonly bool _hiddenChoice = hiddenChoice;
    private readonly ImmutableArray<string> _aliases = [.. aliases];

    /// <inheritdoc/>
    public override string Name => _name;
    /// <inheritdoc/>
    public override IReadOnlyList<string> Aliases => _aliases;
    /// <inheritdoc/>
    public override bool IsHiddenChoice => _hiddenChoice;
    /// <inheritdoc/>
    public override Activation<T> Create<T>(double? parameter = null) =>
        _make(parameter) is var a && a is Activation<T> same ? same : a.Cast<T>();
}

/// <summary>
/// The activations that names select, immutable. <see cref="Default"/> holds the built-ins; <see cref="KindRegistry{TKind, TSelf}.With(TKind)"/> returns
/// a new registry with one more (or a replaced) kind. Readers of problem files, model files and options take one.
/// </summary>
public sealed class ActivationRegistry : KindRegistry<ActivationKind, ActivationRegistry>
{
    private ActivationRegistry(IEnumerable<ActivationKind> kinds) : base(kinds) { }

    /// <inheritdoc/>
    protected override ActivationRegistry WithKinds(IEnumerable<ActivationKind> kinds) => new(kinds);

    /// <summary>
    /// The built-ins, in this order: identity (aliases linear, none), sigmoid, tanh, relu, leaky_relu (slope, default 0.01),
    /// elu (alpha, default 1), softplus, gelu, silu, and softmax (an output activation only).
    /// </summary>
    public static ActivationRegistry Default { get; } = new(
    [
        ActivationKind.Of("identity", _ => new Identity<double>(), true, "linear", "none"),
        ActivationKind.Of("sigmoid", _ => new Sigmoid<double>()),
        ActivationKind.Of("tanh", _ => new Tanh<double>()),
        ActivationKind.Of("relu", _ => new Relu<double>()),
        ActivationKind.Of("leaky_relu", p => new LeakyRelu<double>(p ?? 0.01)),
        ActivationKind.Of("elu", p => new Elu<double>(p ?? 1.0)),
        ActivationKind.Of("softplus", _ => new Softplus<double>()),
        ActivationKind.Of("gelu", _ => new Gelu<double>()),
        ActivationKind.Of("silu", _ => new Silu<double>()),
        ActivationKind.Of("softmax", _ => new Softmax<double>(), hiddenChoice: false),
    ]);

    /// <summary>The names a hidden layer may use.</summary>
    public IReadOnlyList<string> HiddenNames => [.. Kinds.Where(k => k.IsHiddenChoice).Select(k => k.Name)];

    /// <summary>The activation called <paramref name="name"/>; null if there is none.</summary>
    public Activation<T>? TryCreate<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        Find(name)?.Create<T>(parameter);

    /// <summary>The activation called <paramref name="name"/> (a name or an alias) in precision <typeparamref name="T"/>.</summary>
    /// <param name="name">The activation's name or alias.</param>
    /// <param name="parameter">Its numeric parameter for those that take one (leaky_relu's slope, elu's alpha); null for the default.</param>
    /// <exception cref="ArgumentException">No activation has that name; the message lists the known ones.</exception>
    public Activation<T> Create<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        TryCreate<T>(name, parameter) ?? throw new ArgumentException($"unknown activation '{name}' (known: {string.Join(", ", Names)})");
}

/// <summary>Shorthands for the built-in activations (<see cref="ActivationRegistry.Default"/>).</summary>
public static class Activations
{
    /// <summary>The built-in activations' names.</summary>
    public static IReadOnlyList<string> Names => ActivationRegistry.Default.Names;

    /// <summary>The built-in activation called <paramref name="name"/>; null if there is none.</summary>
    public static Activation<T>? TryCreate<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        ActivationRegistry.Default.TryCreate<T>(name, parameter);

    /// <summary>The built-in activation called <paramref name="name"/>, with <paramref name="parameter"/> for those that take one.</summary>
    /// <exception cref="ArgumentException">No built-in activation has that name.</exception>
    public static Activation<T> Create<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        ActivationRegistry.Default.Create<T>(name, parameter);
}

/// <summary>id(z) = z: a layer without an activation (regression outputs, logits that a loss takes).</summary>
public sealed class Identity<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "identity";
    /// <inheritdoc/>
    public override string Symbol => "id";
    /// <inheritdoc/>
    public override string Formula => "id(z) = z";
    /// <inheritdoc/>
    public override string DerivativeFormula => "id′(z) = 1";
    /// <inheritdoc/>
    public override bool IsIdentity => true;
    /// <inheritdoc/>
    public override string? LatexSymbol => null;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Identity<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Identity", [z], output);
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => z.CopyTo(y);
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) => dy.CopyTo(dz);
}

/// <summary>σ(z) = 1/(1 + e^(−z)), squashing to (0, 1); saturates (σ′ ≤ 0.25), so it prefers Xavier initialisation.</summary>
public sealed class Sigmoid<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "sigmoid";
    /// <inheritdoc/>
    public override string Symbol => "σ";
    /// <inheritdoc/>
    public override string Formula => "σ(z) = 1/(1 + e^(−z))";
    /// <inheritdoc/>
    public override string DerivativeFormula => "σ′(z) = σ(z)·(1 − σ(z))";
    /// <inheritdoc/>
    public override bool ForwardIsPiecewiseExact => false;
    /// <inheritdoc/>
    public override double? MaxDerivative => 0.25;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Sigmoid<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Sigmoid", [z], output);
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => TensorPrimitives.Sigmoid(z, y);
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.SigmoidBackward(y, dy, dz);
}

/// <summary>tanh(z), squashing to (−1, 1); saturates (tanh′ ≤ 1), so it prefers Xavier initialisation.</summary>
public sealed class Tanh<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "tanh";
    /// <inheritdoc/>
    public override string Symbol => "tanh";
    /// <inheritdoc/>
    public override string Formula => "tanh(z) = (e^z − e^(−z))/(e^z + e^(−z))";
    /// <inheritdoc/>
    public override string DerivativeFormula => "tanh′(z) = 1 − tanh²(z)";
    /// <inheritdoc/>
    public override bool ForwardIsPiecewiseExact => false;
    /// <inheritdoc/>
    public override string LatexSymbol => "\\tanh";
    /// <inheritdoc/>
    public override double InitGain => 5.0 / 3.0;
    /// <inheritdoc/>
    public override double? MaxDerivative => 1.0;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Tanh<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Tanh", [z], output);
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => TensorPrimitives.Tanh(z, y);
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.TanhBackward(y, dy, dz);
}

/// <summary>relu(z) = max(z, 0); its units can die (z ≤ 0 for every sample), and it prefers He initialisation.</summary>
public sealed class Relu<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "relu";
    /// <inheritdoc/>
    public override string Symbol => "relu";
    /// <inheritdoc/>
    public override string Formula => "relu(z) = max(z, 0)";
    /// <inheritdoc/>
    public override string DerivativeFormula => "relu′(z) = 1 if z > 0 else 0";
    /// <inheritdoc/>
    public override string DisplayName => "ReLU";
    /// <inheritdoc/>
    public override InitKind PreferredInit => InitKind.HeNormal;
    /// <inheritdoc/>
    public override bool CanDie => true;
    /// <summary>The kernels' relu epilogue: z &gt; 0 ? z : +0, as <see cref="Forward"/>.</summary>
    public override Kernels.GemmEpilogue KernelEpilogue => Kernels.GemmEpilogue.Relu;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Relu<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Relu", [z], output);
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => Kernels.ActivationKernels.ReluForward(z, y);
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.ReluBackward(z, dy, dz, T.Zero);
}

/// <summary>lrelu(z) = z where z &gt; 0, else slope·z: a ReLU whose units cannot die.</summary>
/// <param name="slope">The slope for z ≤ 0 (PyTorch's negative_slope; the registry's default 0.01).</param>
public sealed class LeakyRelu<T>(double slope) : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _slope = T.CreateChecked(slope);
    /// <summary>The slope for z ≤ 0.</summary>
    public double Slope { get; } = slope;
    /// <inheritdoc/>
    public override string Name => "leaky_relu";
    /// <inheritdoc/>
    public override string Symbol => "lrelu";
    /// <inheritdoc/>
    public override string Formula => $"lrelu(z) = z if z > 0 else {Slope}·z";
    /// <inheritdoc/>
    public override string DerivativeFormula => $"lrelu′(z) = 1 if z > 0 else {Slope}";
    /// <inheritdoc/>
    public override double? Parameter => Slope;
    /// <inheritdoc/>
    public override InitKind PreferredInit => InitKind.HeNormal;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new LeakyRelu<TOut>(Slope);
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) =>
        graph.Node("LeakyRelu", [z], output, OnnxAttribute.Float("alpha", (float)Slope));
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] > T.Zero ? z[i] : _slope * z[i];
    }
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.ReluBackward(z, dy, dz, _slope);
}

/// <summary>elu(z) = z where z &gt; 0, else alpha·(e^z − 1): smooth, with negative outputs down to −alpha.</summary>
/// <param name="alpha">The scale of the negative part (the registry's default 1).</param>
public sealed class Elu<T>(double alpha) : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = T.CreateChecked(alpha);
    /// <summary>The scale of the negative part; elu(z) → −alpha as z → −∞.</summary>
    public double Alpha { get; } = alpha;
    /// <inheritdoc/>
    public override string Name => "elu";
    /// <inheritdoc/>
    public override string Symbol => "elu";
    /// <inheritdoc/>
    public override string Formula => $"elu(z) = z if z > 0 else {Alpha}·(e^z − 1)";
    /// <inheritdoc/>
    public override string DerivativeFormula => $"elu′(z) = 1 if z > 0 else {Alpha}·e^z";
    /// <inheritdoc/>
    public override double? Parameter => Alpha;
    /// <inheritdoc/>
    public override InitKind PreferredInit => InitKind.HeNormal;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Elu<TOut>(Alpha);
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) =>
        graph.Node("Elu", [z], output, OnnxAttribute.Float("alpha", (float)Alpha));
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] > T.Zero ? z[i] : _alpha * SpecialFunctions.ExpM1(z[i]);
    }
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int i = 0; i < z.Length; i++) dz[i] = z[i] > T.Zero ? dy[i] : dy[i] * _alpha * T.Exp(z[i]);
    }
}

/// <summary>softplus(z) = log(1 + e^z), linear above 20 as in PyTorch.</summary>
public sealed class Softplus<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private static readonly T Threshold = T.CreateChecked(20);
    /// <inheritdoc/>
    public override string Name => "softplus";
    /// <inheritdoc/>
    public override string Symbol => "softplus";
    /// <inheritdoc/>
    public override string Formula => "softplus(z) = log(1 + e^z)";
    /// <inheritdoc/>
    public override string DerivativeFormula => "softplus′(z) = σ(z)";
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Softplus<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Softplus", [z], output);
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] > Threshold ? z[i] : SpecialFunctions.Log1P(T.Exp(z[i]));
    }
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int i = 0; i < z.Length; i++)
        {
            if (z[i] > Threshold) { dz[i] = dy[i]; continue; }
            T e = T.Exp(z[i]);
            dz[i] = dy[i] * e / (e + T.One);
        }
    }
}

/// <summary>The exact GELU, z·Φ(z) with the normal CDF Φ written through erf.</summary>
public sealed class Gelu<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "gelu";
    /// <inheritdoc/>
    public override string Symbol => "gelu";
    /// <inheritdoc/>
    public override string Formula => "gelu(z) = z·Φ(z),  Φ(z) = (1 + erf(z/√2))/2";
    /// <inheritdoc/>
    public override string DerivativeFormula => "gelu′(z) = Φ(z) + z·φ(z),  φ(z) = e^(−z²/2)/√(2π)";
    /// <inheritdoc/>
    public override InitKind PreferredInit => InitKind.HeNormal;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Gelu<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix)
    {
        if (graph.Opset >= 20) return graph.Node("Gelu", [z], output);
        // gelu(z) = z · 0.5 · (1 + erf(z / √2)), the exact form.
        string sqrt2 = graph.Constant("const.sqrt2", MathF.Sqrt(2f));
        string one = graph.Constant("const.one", 1f);
        string half = graph.Constant("const.half", 0.5f);
        string scaled = graph.Node("Div", [z, sqrt2], $"{prefix}.gelu_scaled");
        string erf = graph.Node("Erf", [scaled], $"{prefix}.gelu_erf");
        string cdf2 = graph.Node("Add", [erf, one], $"{prefix}.gelu_cdf2");
        string zc = graph.Node("Mul", [z, cdf2], $"{prefix}.gelu_zcdf2");
        return graph.Node("Mul", [zc, half], output);
    }
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++)
        {
            double x = double.CreateTruncating(z[i]);
            y[i] = T.CreateTruncating(x * SpecialFunctions.NormalCdf(x));
        }
    }
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int i = 0; i < z.Length; i++)
        {
            double x = double.CreateTruncating(z[i]);
            double d = SpecialFunctions.NormalCdf(x) + x * SpecialFunctions.NormalPdf(x);
            dz[i] = dy[i] * T.CreateTruncating(d);
        }
    }
}

/// <summary>silu(z) = z·σ(z) (swish): smooth and non-monotonic, with a minimum of about −0.28 near z = −1.28.</summary>
public sealed class Silu<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "silu";
    /// <inheritdoc/>
    public override string Symbol => "silu";
    /// <inheritdoc/>
    public override string Formula => "silu(z) = z·σ(z)";
    /// <inheritdoc/>
    public override string DerivativeFormula => "silu′(z) = σ(z)·(1 + z·(1 − σ(z)))";
    /// <inheritdoc/>
    public override InitKind PreferredInit => InitKind.HeNormal;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Silu<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix)
    {
        string s = graph.Node("Sigmoid", [z], $"{prefix}.sigmoid");
        return graph.Node("Mul", [z, s], output);
    }
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] / (T.One + T.Exp(-z[i]));
    }
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int i = 0; i < z.Length; i++)
        {
            T s = T.One / (T.One + T.Exp(-z[i]));
            dz[i] = dy[i] * s * (T.One + z[i] * (T.One - s));
        }
    }
}

/// <summary>
/// softmax(z)_j = e^(z_j) / Σ_k e^(z_k) over each row, computed stably by subtracting the row maximum: an output
/// activation that turns logits into class probabilities. Not element-wise: its backward uses the row's Jacobian, and
/// <see cref="Derivative"/> throws <see cref="InvalidOperationException"/>.
/// </summary>
public sealed class Softmax<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "softmax";
    /// <inheritdoc/>
    public override string Symbol => "softmax";
    /// <inheritdoc/>
    public override string Formula => "softmax(z)_j = e^(z_j) / Σ_k e^(z_k)";
    /// <inheritdoc/>
    public override string DerivativeFormula => "∂softmax_j/∂z_k = s_j·(δ_jk − s_k)";
    /// <inheritdoc/>
    public override bool IsElementwise => false;
    /// <inheritdoc/>
    public override Activation<TOut> Cast<TOut>() => new Softmax<TOut>();
    /// <inheritdoc/>
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) =>
        graph.Node("Softmax", [z], output, OnnxAttribute.Int("axis", -1));
    /// <inheritdoc/>
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int r = 0; r < z.Length; r += cols) SoftmaxOp<T>.SoftmaxRow(z.Slice(r, cols), y.Slice(r, cols), log: false);
    }
    /// <inheritdoc/>
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int r = 0; r < z.Length; r += cols)
        {
            var yr = y.Slice(r, cols); var dyr = dy.Slice(r, cols);
            T s = TensorPrimitives.Dot(dyr, yr);
            for (int j = 0; j < cols; j++) dz[r + j] = yr[j] * (dyr[j] - s);
        }
    }
    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">Always: softmax has a Jacobian, not an element-wise derivative.</exception>
    public override void Derivative(ReadOnlySpan<T> z, ReadOnlySpan<T> y, Span<T> d) =>
        throw new InvalidOperationException("softmax couples a row: it has a Jacobian, not an element-wise derivative");
}

/// <summary>h = f(z) for an activation f.</summary>
public sealed class ActivationOp<T>(Activation<T> activation) : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _scratch;
    /// <summary>The activation applied.</summary>
    public Activation<T> Activation { get; } = activation;
    /// <inheritdoc/>
    public override string Name => Activation.Name;
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["z"];
    /// <inheritdoc/>
    public override string Formula => $"h = {Activation.Symbol}(z)";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => Activation.IsElementwise
        ? [$"dz = dh ⊙ {Activation.Symbol}′(z)"]
        : ["dz = s ⊙ (dh − Σ_row(dh ⊙ s))"];

    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs) => inputs[0].Value.ShapeArray;

    private static int Cols(Tensor<T> t) => t.Rank == 0 ? 1 : t.Dim(-1);

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Activation.Forward(inputs[0].Value.Data, output.Data, Cols(output));

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var z = inputs[0];
        if (!z.RequiresGrad) return;
        var dz = z.GradTarget(out bool acc);
        if (!acc)
        {
            Activation.Backward(z.Value.Data, output.Value.Data, output.Grad.Data, dz.Data, Cols(output.Value));
            return;
        }
        _scratch ??= new Tensor<T>(dz.ShapeArray);
        Activation.Backward(z.Value.Data, output.Value.Data, output.Grad.Data, _scratch.Data, Cols(output.Value));
        TensorPrimitives.Add(dz.Data, _scratch.Data, dz.Data);
    }
}
