using System.Collections.Immutable;
using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Kernels;

namespace Backprop.Ops;

/// <summary>How a weight is drawn at the start: Glorot/Xavier for saturating activations, He/Kaiming for ReLU-like ones.</summary>
public enum InitKind { Default, XavierUniform, XavierNormal, HeUniform, HeNormal }

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
    public abstract string Formula { get; }
    public abstract string DerivativeFormula { get; }
    public virtual bool IsElementwise => true;
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
public readonly record struct OnnxAttribute(string Name, long? IntValue, float? FloatValue)
{
    public static OnnxAttribute Int(string name, long value) => new(name, value, null);
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

    public override string Name => _name;
    public override IReadOnlyList<string> Aliases => _aliases;
    public override bool IsHiddenChoice => _hiddenChoice;
    public override Activation<T> Create<T>(double? parameter = null) =>
        _make(parameter) is var a && a is Activation<T> same ? same : a.Cast<T>();
}

/// <summary>
/// The activations that names select, immutable. <see cref="Default"/> holds the built-ins; <see cref="With"/> returns
/// a new registry with one more (or a replaced) kind. Readers of problem files, model files and options take one.
/// </summary>
public sealed class ActivationRegistry : KindRegistry<ActivationKind, ActivationRegistry>
{
    private ActivationRegistry(IEnumerable<ActivationKind> kinds) : base(kinds) { }

    protected override ActivationRegistry WithKinds(IEnumerable<ActivationKind> kinds) => new(kinds);

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

    public Activation<T> Create<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        TryCreate<T>(name, parameter) ?? throw new ArgumentException($"unknown activation '{name}' (known: {string.Join(", ", Names)})");
}

/// <summary>Shorthands for the built-in activations (<see cref="ActivationRegistry.Default"/>).</summary>
public static class Activations
{
    /// <summary>The built-in activations' names.</summary>
    public static IReadOnlyList<string> Names => ActivationRegistry.Default.Names;

    public static Activation<T>? TryCreate<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        ActivationRegistry.Default.TryCreate<T>(name, parameter);

    public static Activation<T> Create<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        ActivationRegistry.Default.Create<T>(name, parameter);
}

public sealed class Identity<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "identity";
    public override string Symbol => "id";
    public override string Formula => "id(z) = z";
    public override string DerivativeFormula => "id′(z) = 1";
    public override bool IsIdentity => true;
    public override string? LatexSymbol => null;
    public override Activation<TOut> Cast<TOut>() => new Identity<TOut>();
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Identity", [z], output);
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => z.CopyTo(y);
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) => dy.CopyTo(dz);
}

public sealed class Sigmoid<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "sigmoid";
    public override string Symbol => "σ";
    public override string Formula => "σ(z) = 1/(1 + e^(−z))";
    public override string DerivativeFormula => "σ′(z) = σ(z)·(1 − σ(z))";
    public override bool ForwardIsPiecewiseExact => false;
    public override double? MaxDerivative => 0.25;
    public override Activation<TOut> Cast<TOut>() => new Sigmoid<TOut>();
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Sigmoid", [z], output);
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => TensorPrimitives.Sigmoid(z, y);
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.SigmoidBackward(y, dy, dz);
}

public sealed class Tanh<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "tanh";
    public override string Symbol => "tanh";
    public override string Formula => "tanh(z) = (e^z − e^(−z))/(e^z + e^(−z))";
    public override string DerivativeFormula => "tanh′(z) = 1 − tanh²(z)";
    public override bool ForwardIsPiecewiseExact => false;
    public override string LatexSymbol => "\\tanh";
    public override double InitGain => 5.0 / 3.0;
    public override double? MaxDerivative => 1.0;
    public override Activation<TOut> Cast<TOut>() => new Tanh<TOut>();
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Tanh", [z], output);
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => TensorPrimitives.Tanh(z, y);
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.TanhBackward(y, dy, dz);
}

public sealed class Relu<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "relu";
    public override string Symbol => "relu";
    public override string Formula => "relu(z) = max(z, 0)";
    public override string DerivativeFormula => "relu′(z) = 1 if z > 0 else 0";
    public override string DisplayName => "ReLU";
    public override InitKind PreferredInit => InitKind.HeNormal;
    public override bool CanDie => true;
    public override Activation<TOut> Cast<TOut>() => new Relu<TOut>();
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Relu", [z], output);
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols) => Kernels.ActivationKernels.ReluForward(z, y);
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.ReluBackward(z, dy, dz, T.Zero);
}

public sealed class LeakyRelu<T>(double slope) : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _slope = T.CreateChecked(slope);
    public double Slope { get; } = slope;
    public override string Name => "leaky_relu";
    public override string Symbol => "lrelu";
    public override string Formula => $"lrelu(z) = z if z > 0 else {Slope}·z";
    public override string DerivativeFormula => $"lrelu′(z) = 1 if z > 0 else {Slope}";
    public override double? Parameter => Slope;
    public override InitKind PreferredInit => InitKind.HeNormal;
    public override Activation<TOut> Cast<TOut>() => new LeakyRelu<TOut>(Slope);
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) =>
        graph.Node("LeakyRelu", [z], output, OnnxAttribute.Float("alpha", (float)Slope));
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] > T.Zero ? z[i] : _slope * z[i];
    }
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols) =>
        Kernels.ActivationKernels.ReluBackward(z, dy, dz, _slope);
}

public sealed class Elu<T>(double alpha) : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = T.CreateChecked(alpha);
    public double Alpha { get; } = alpha;
    public override string Name => "elu";
    public override string Symbol => "elu";
    public override string Formula => $"elu(z) = z if z > 0 else {Alpha}·(e^z − 1)";
    public override string DerivativeFormula => $"elu′(z) = 1 if z > 0 else {Alpha}·e^z";
    public override double? Parameter => Alpha;
    public override InitKind PreferredInit => InitKind.HeNormal;
    public override Activation<TOut> Cast<TOut>() => new Elu<TOut>(Alpha);
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) =>
        graph.Node("Elu", [z], output, OnnxAttribute.Float("alpha", (float)Alpha));
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] > T.Zero ? z[i] : _alpha * SpecialFunctions.ExpM1(z[i]);
    }
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int i = 0; i < z.Length; i++) dz[i] = z[i] > T.Zero ? dy[i] : dy[i] * _alpha * T.Exp(z[i]);
    }
}

/// <summary>softplus(z) = log(1 + e^z), linear above 20 as in PyTorch.</summary>
public sealed class Softplus<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private static readonly T Threshold = T.CreateChecked(20);
    public override string Name => "softplus";
    public override string Symbol => "softplus";
    public override string Formula => "softplus(z) = log(1 + e^z)";
    public override string DerivativeFormula => "softplus′(z) = σ(z)";
    public override Activation<TOut> Cast<TOut>() => new Softplus<TOut>();
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Softplus", [z], output);
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] > Threshold ? z[i] : SpecialFunctions.Log1P(T.Exp(z[i]));
    }
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
    public override string Name => "gelu";
    public override string Symbol => "gelu";
    public override string Formula => "gelu(z) = z·Φ(z),  Φ(z) = (1 + erf(z/√2))/2";
    public override string DerivativeFormula => "gelu′(z) = Φ(z) + z·φ(z),  φ(z) = e^(−z²/2)/√(2π)";
    public override InitKind PreferredInit => InitKind.HeNormal;
    public override Activation<TOut> Cast<TOut>() => new Gelu<TOut>();
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
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++)
        {
            double x = double.CreateTruncating(z[i]);
            y[i] = T.CreateTruncating(x * SpecialFunctions.NormalCdf(x));
        }
    }
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

public sealed class Silu<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "silu";
    public override string Symbol => "silu";
    public override string Formula => "silu(z) = z·σ(z)";
    public override string DerivativeFormula => "silu′(z) = σ(z)·(1 + z·(1 − σ(z)))";
    public override InitKind PreferredInit => InitKind.HeNormal;
    public override Activation<TOut> Cast<TOut>() => new Silu<TOut>();
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix)
    {
        string s = graph.Node("Sigmoid", [z], $"{prefix}.sigmoid");
        return graph.Node("Mul", [z, s], output);
    }
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] / (T.One + T.Exp(-z[i]));
    }
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int i = 0; i < z.Length; i++)
        {
            T s = T.One / (T.One + T.Exp(-z[i]));
            dz[i] = dy[i] * s * (T.One + z[i] * (T.One - s));
        }
    }
}

public sealed class Softmax<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "softmax";
    public override string Symbol => "softmax";
    public override string Formula => "softmax(z)_j = e^(z_j) / Σ_k e^(z_k)";
    public override string DerivativeFormula => "∂softmax_j/∂z_k = s_j·(δ_jk − s_k)";
    public override bool IsElementwise => false;
    public override Activation<TOut> Cast<TOut>() => new Softmax<TOut>();
    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) =>
        graph.Node("Softmax", [z], output, OnnxAttribute.Int("axis", -1));
    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int r = 0; r < z.Length; r += cols) SoftmaxOp<T>.SoftmaxRow(z.Slice(r, cols), y.Slice(r, cols), log: false);
    }
    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int r = 0; r < z.Length; r += cols)
        {
            var yr = y.Slice(r, cols); var dyr = dy.Slice(r, cols);
            T s = TensorPrimitives.Dot(dyr, yr);
            for (int j = 0; j < cols; j++) dz[r + j] = yr[j] * (dyr[j] - s);
        }
    }
    public override void Derivative(ReadOnlySpan<T> z, ReadOnlySpan<T> y, Span<T> d) =>
        throw new InvalidOperationException("softmax couples a row: it has a Jacobian, not an element-wise derivative");
}

/// <summary>h = f(z) for an activation f.</summary>
public sealed class ActivationOp<T>(Activation<T> activation) : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _scratch;
    public Activation<T> Activation { get; } = activation;
    public override string Name => Activation.Name;
    public override IReadOnlyList<string> InputNames => ["z"];
    public override string Formula => $"h = {Activation.Symbol}(z)";
    public override IReadOnlyList<string> GradFormulas => Activation.IsElementwise
        ? [$"dz = dh ⊙ {Activation.Symbol}′(z)"]
        : ["dz = s ⊙ (dh − Σ_row(dh ⊙ s))"];

    public override int[] OutputShape(Var<T>[] inputs) => inputs[0].Value.ShapeArray;

    private static int Cols(Tensor<T> t) => t.Rank == 0 ? 1 : t.Dim(-1);

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Activation.Forward(inputs[0].Value.Data, output.Data, Cols(output));

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
