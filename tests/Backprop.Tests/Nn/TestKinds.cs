using System.Numerics;
using Backprop.Nn;

namespace Backprop.Tests.Nn;

/// <summary>
/// Kinds defined only here, in the test project, to show that the library takes new ones without an edit:
/// an activation (softsign) and a layer kind (a learned per-feature scale with a fixed shift). Each is one class plus one registry line.
/// </summary>
public static class TestKinds
{
    public const string Softsign = "test_softsign";
    /// <summary>The same function, declaring that block-wise application may round differently: never fused forward.</summary>
    public const string SoftsignUnfused = "test_softsign_unfused";

    /// <summary>The built-ins plus the test-only kinds: what a program that adds kinds passes to readers and the CLI.</summary>
    public static Catalog Catalog { get; } = Catalog.Default
        .With(ActivationKind.Of(Softsign, _ => new TestSoftsign<double>(piecewiseExact: true)))
        .With(ActivationKind.Of(SoftsignUnfused, _ => new TestSoftsign<double>(piecewiseExact: false)))
        .With(new ScaleKind());
}

/// <summary>softsign(z) = z/(1 + |z|), a test-only activation with every fact the library asks of one.</summary>
public sealed class TestSoftsign<T>(bool piecewiseExact) : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => piecewiseExact ? TestKinds.Softsign : TestKinds.SoftsignUnfused;
    public override string Symbol => "ssign";
    public override string Formula => "ssign(z) = z/(1 + |z|)";
    public override string DerivativeFormula => "ssign′(z) = 1/(1 + |z|)²";
    public override bool ForwardIsPiecewiseExact => piecewiseExact;
    /// <summary>Saturates like tanh (its derivative is at most 1): counted by health.</summary>
    public override double? MaxDerivative => 1.0;

    public override void Forward(ReadOnlySpan<T> z, Span<T> y, int cols)
    {
        for (int i = 0; i < z.Length; i++) y[i] = z[i] / (T.One + T.Abs(z[i]));
    }

    public override void Backward(ReadOnlySpan<T> z, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dz, int cols)
    {
        for (int i = 0; i < z.Length; i++)
        {
            T d = T.One + T.Abs(z[i]);
            dz[i] = dy[i] / (d * d);
        }
    }

    public override Activation<TOut> Cast<TOut>() => new TestSoftsign<TOut>(piecewiseExact);

    public override string EmitOnnx(IOnnxGraph graph, string z, string output, string prefix) => graph.Node("Softsign", [z], output);
}

/// <summary>The kind of <see cref="ScaleLayer{T}"/>: a square layer without bias.</summary>
public sealed class ScaleKind : LayerKind
{
    public const string KindName = "test_scale";
    public override string Name => KindName;

    public override ILayer<T> Create<T>(LayerShape shape, Activation<T> activation)
    {
        if (shape.Inputs != shape.Outputs) throw new ArgumentException($"a scale layer maps n features to n, not {shape.Inputs} to {shape.Outputs}");
        if (shape.Bias) throw new ArgumentException("a scale layer has no bias");
        return new ScaleLayer<T>(Tensor<T>.Ones(shape.Inputs), new Tensor<T>(shape.Inputs), activation);
    }
}

/// <summary>
/// h = f(x ⊙ s + c): a learned scale s per feature (a parameter of role Scale, starting at one) and a fixed shift c
/// per feature (a buffer: saved and loaded, never trained), recorded as two ops.
/// </summary>
public sealed class ScaleLayer<T> : ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public ScaleLayer(Tensor<T> scale, Tensor<T> shift, Activation<T> activation)
    {
        Scale = Var<T>.Parameter(scale, "s");
        Shift = Var<T>.Constant(shift, "c");
        Activation = activation;
        Parameters = [new("scale", Scale, ParameterRole.Scale)];
        Buffers = [new("shift", shift)];
    }

    public Var<T> Scale { get; }
    public Var<T> Shift { get; }
    public string Kind => ScaleKind.KindName;
    public int Inputs => Scale.Value.Length;
    public int Outputs => Scale.Value.Length;
    public Activation<T> Activation { get; }
    public IReadOnlyList<LayerParameter<T>> Parameters { get; }
    public IReadOnlyList<LayerBuffer<T>> Buffers { get; }
    public bool Training { get; set; } = true;

    public LayerOutput<T> Forward(Var<T> x)
    {
        var u = Functional.Mul(x, Scale);
        u.Name = "u";
        var z = Functional.Add(u, Shift);
        return new(z, Activation.IsIdentity ? z : Functional.Activate(z, Activation));
    }

    public string ExportOnnx(IOnnxGraph graph, string input, string prefix, string? output)
    {
        string s = graph.Initializer($"{prefix}.scale", Scale.Value);
        string c = graph.Initializer($"{prefix}.shift", Shift.Value);
        string u = graph.Node("Mul", [input, s], $"{prefix}.u");
        bool identity = Activation.IsIdentity;
        string z = graph.Node("Add", [u, c], identity && output is not null ? output : $"{prefix}.z");
        return identity ? z : Activation.EmitOnnx(graph, z, output ?? $"{prefix}.h", prefix);
    }

    public ILayer<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut> =>
        new ScaleLayer<TOut>(Scale.Value.Cast<TOut>(), Shift.Value.Cast<TOut>(), Activation.Cast<TOut>());

    public string Describe() => $"scale {Inputs} {Activation.Name}";
}
