using System.Collections.Immutable;
using System.Globalization;
using System.Numerics;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Ops;
using Backprop.Kernels;
using Backprop.Nn.Inference;

namespace Backprop.Nn;

/// <summary>The rules the norm and dropout kinds share.</summary>
internal static class SettingRules
{
    public static string? Positive(double v) => v > 0 && double.IsFinite(v) ? null : "must be a positive number";
    public static string? UnitInterval(double v) => v >= 0 && v <= 1 ? null : "must be in [0, 1]";
    public static string? DropoutP(double v) => v >= 0 && v < 1 ? null : "must be in [0, 1): p is the probability of dropping a unit";

    public static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Checks a value against its setting's rule; throws <see cref="ArgumentException"/> naming the setting.</summary>
    public static double Checked(LayerShape shape, LayerSetting setting)
    {
        double v = shape.Setting(setting.Name, setting.Default);
        if (setting.Check?.Invoke(v) is { } why) throw new ArgumentException($"{setting.Name} = {Format(v)} {why}");
        return v;
    }

    public static void RequireSquare(LayerShape shape, string kind)
    {
        if (shape.Inputs < 1 || shape.Outputs != shape.Inputs)
            throw new ArgumentException($"a {kind} layer keeps its width: {shape.Inputs} inputs but {shape.Outputs} outputs");
    }
}

/// <summary>The kind of <see cref="LayerNormLayer{T}"/> (PyTorch's nn.LayerNorm over the features).</summary>
public sealed class LayerNormKind : LayerKind
{
    /// <summary>The layer norm kind's name in files: "layernorm".</summary>
    public const string KindName = "layernorm";
    /// <summary>ε, added to the variance before the square root: a positive number, default 1e-5 (PyTorch's).</summary>
    public static readonly LayerSetting Eps = new("eps", LayerSettingType.Number, 1e-5, "added to the variance") { Check = SettingRules.Positive };
    /// <inheritdoc/>
    public override string Name => KindName;
    /// <inheritdoc/>
    public override string TorchModule => "LayerNorm";
    /// <inheritdoc/>
    public override long ForwardFlops(LayerShape shape) => (5L + (shape.Bias ? 2 : 0)) * shape.Inputs;
    /// <inheritdoc/>
    public override string FlopsRule => "≈ 5 per feature (mean, centre, square and sum, scale by 1/σ) + 2 with affine";
    /// <inheritdoc/>
    public override IReadOnlyList<LayerSetting> Settings => [Eps];
    /// <summary>True: the output has the input's width.</summary>
    public override bool KeepsWidth => true;
    /// <summary>True: γ and β (weight and bias) are both there or both absent.</summary>
    public override bool AffinePair => true;

    /// <summary>A <see cref="LayerNormLayer{T}"/> of the shape's width (γ = 1, β = 0 when <see cref="LayerShape.Bias"/>).</summary>
    /// <exception cref="ArgumentException">The width is less than 1 or outputs ≠ inputs, or a setting breaks its rule.</exception>
    public override ILayer<T> Create<T>(LayerShape shape, Activation<T> activation)
    {
        SettingRules.RequireSquare(shape, KindName);
        return new LayerNormLayer<T>(shape.Inputs, activation, shape.Bias, SettingRules.Checked(shape, Eps));
    }
}

/// <summary>
/// Layer normalisation of each sample over its features, y = f(γ ⊙ (x − μ)/√(σ² + ε) + β), with the affine γ and β
/// optional (as a pair). Saved as layers.{i}.weight (γ) and layers.{i}.bias (β); exported as ONNX LayerNormalization.
/// </summary>
public sealed class LayerNormLayer<T> : ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>
    /// A layer norm over <paramref name="features"/> features, γ = 1 and β = 0 with <paramref name="affine"/>.
    /// </summary>
    /// <param name="features">Features per sample (at least 1).</param>
    /// <param name="activation">f, applied last (the identity for none).</param>
    /// <param name="affine">Whether the layer has the trained γ and β.</param>
    /// <param name="eps">ε, added to each row's variance.</param>
    /// <exception cref="ArgumentException"><paramref name="features"/> is less than 1.</exception>
    public LayerNormLayer(int features, Activation<T> activation, bool affine = true, double eps = 1e-5)
    {
        if (features < 1) throw new ArgumentException($"a layernorm layer needs at least one feature, not {features}");
        Features = features;
        Eps = eps;
        Activation = activation;
        if (affine)
        {
            var w = new Tensor<T>(features);
            w.Fill(T.One);
            Weight = Var<T>.Parameter(w, "γ");
            Bias = Var<T>.Parameter(new Tensor<T>(features), "β");
            Parameters = [new("weight", Weight, ParameterRole.Scale), new("bias", Bias, ParameterRole.Bias)];
        }
        else Parameters = [];
    }

    /// <summary>The first opset of the default domain with LayerNormalization.</summary>
    public const int LayerNormalizationOpset = 17;

    /// <inheritdoc/>
    public string Kind => LayerNormKind.KindName;
    /// <summary>Features per sample, in and out (at least 1).</summary>
    public int Features { get; }
    /// <summary>ε, added to each row's variance before the square root.</summary>
    public double Eps { get; }
    /// <summary>γ, [features], starting at ones; null without the affine part.</summary>
    public Var<T>? Weight { get; }
    /// <summary>β, [features], starting at zeros; null without the affine part.</summary>
    public Var<T>? Bias { get; }
    /// <inheritdoc/>
    public Activation<T> Activation { get; }
    /// <inheritdoc/>
    public int Inputs => Features;
    /// <inheritdoc/>
    public int Outputs => Features;
    /// <summary>γ (saved as weight) and β (bias) when the layer has the affine part, else none.</summary>
    public IReadOnlyList<LayerParameter<T>> Parameters { get; }
    /// <summary>None: the layer keeps no untrained state.</summary>
    public IReadOnlyList<LayerBuffer<T>> Buffers => [];
    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> Settings => ImmutableDictionary<string, double>.Empty.Add("eps", Eps);

    /// <summary>A layer norm computes the same in both modes.</summary>
    public bool Training { get; set; } = true;

    /// <summary>False: a layer norm computes the same in both modes.</summary>
    public bool ModeChangesForward => false;

    /// <summary>Each row normalised and scaled with the tape op's kernels, then f.</summary>
    public IInferenceStep<T>? CompileInference(ComputeContext context) =>
        new LayerNormInferenceStep<T>(Features, T.CreateChecked(Eps), Weight?.Value.Span.ToArray(), Bias?.Value.Span.ToArray(), Activation);

    /// <inheritdoc/>
    public LayerOutput<T> Forward(Var<T> x)
    {
        var z = Functional.LayerNorm(x, Weight, Bias, Eps);
        var h = Activation.IsIdentity ? z : Functional.Activate(z, Activation);
        return new(z, h);
    }

    /// <summary>
    /// An ONNX LayerNormalization over the last axis (ones for γ without the affine part), then the activation's nodes.
    /// </summary>
    /// <exception cref="NotSupportedException">The graph's opset is below <see cref="LayerNormalizationOpset"/>.</exception>
    public string ExportOnnx(IOnnxGraph graph, string input, string prefix, string? output)
    {
        if (graph.Opset < LayerNormalizationOpset)
            throw new NotSupportedException($"ONNX LayerNormalization needs opset {LayerNormalizationOpset} or later, not {graph.Opset}");
        // ONNX LayerNormalization needs a scale: ones stand for a layer without the affine part
        var scale = Weight?.Value ?? Ones(Features);
        var inputs = new List<string> { input, graph.Initializer($"{prefix}.weight", scale) };
        if (Bias is not null) inputs.Add(graph.Initializer($"{prefix}.bias", Bias.Value));
        bool identity = Activation.IsIdentity;
        string z = graph.Node("LayerNormalization", inputs, identity && output is not null ? output : $"{prefix}.z",
            OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", (float)Eps));
        return identity ? z : Activation.EmitOnnx(graph, z, output ?? $"{prefix}.h", prefix);
    }

    private static Tensor<T> Ones(int n)
    {
        var t = new Tensor<T>(n);
        t.Fill(T.One);
        return t;
    }

    /// <inheritdoc/>
    public ILayer<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut>
    {
        var copy = new LayerNormLayer<TOut>(Features, Activation.Cast<TOut>(), Weight is not null, Eps) { Training = Training };
        if (Weight is not null)
        {
            Weight.Value.Cast<TOut>().Span.CopyTo(copy.Weight!.Value.Span);
            Bias!.Value.Cast<TOut>().Span.CopyTo(copy.Bias!.Value.Span);
        }
        return copy;
    }

    /// <inheritdoc/>
    public string Describe() => $"layernorm {Features} {Activation.Name}{(Weight is null ? ", no affine" : "")}";

    /// <summary>The class, width, activation and settings, for debugging.</summary>
    public override string ToString() => $"LayerNormLayer({Features}, {Activation.Name}, eps {SettingRules.Format(Eps)})";
}

/// <summary>The kind of <see cref="BatchNormLayer{T}"/> (PyTorch's nn.BatchNorm1d on batch × features).</summary>
public sealed class BatchNormKind : LayerKind
{
    /// <summary>The batch norm kind's name in files: "batchnorm".</summary>
    public const string KindName = "batchnorm";
    /// <summary>ε, added to the variance before the square root: a positive number, default 1e-5 (PyTorch's).</summary>
    public static readonly LayerSetting Eps = new("eps", LayerSettingType.Number, 1e-5, "added to the variance") { Check = SettingRules.Positive };
    /// <summary>How far each training batch moves the running statistics, in [0, 1], default 0.1 (PyTorch's convention: new = (1 − m)·old + m·batch).</summary>
    public static readonly LayerSetting Momentum = new("momentum", LayerSettingType.Number, 0.1, "how far each training batch moves the running statistics")
    { Check = SettingRules.UnitInterval };
    /// <summary>Whether the layer normalises with the batch's statistics (1, the default) or the running ones (0); not saved in model files.</summary>
    public static readonly LayerSetting Training = new("training", LayerSettingType.Flag, 1, "normalise with the batch's statistics (else the running ones)")
    { Saved = false };
    /// <inheritdoc/>
    public override string Name => KindName;
    /// <inheritdoc/>
    public override string TorchModule => "BatchNorm1d";
    /// <inheritdoc/>
    public override long ForwardFlops(LayerShape shape) => (2L + (shape.Bias ? 2 : 0)) * shape.Inputs;
    /// <inheritdoc/>
    public override string FlopsRule => "2 per feature at inference (subtract the running mean, scale by 1/σ) + 2 with affine; ≈ 5 more in training";
    /// <inheritdoc/>
    public override IReadOnlyList<LayerSetting> Settings => [Eps, Momentum, Training];
    /// <summary>True: the output has the input's width.</summary>
    public override bool KeepsWidth => true;
    /// <summary>True: γ and β (weight and bias) are both there or both absent.</summary>
    public override bool AffinePair => true;

    /// <summary>A <see cref="BatchNormLayer{T}"/> of the shape's width, in the mode its training setting gives.</summary>
    /// <exception cref="ArgumentException">The width is less than 1 or outputs ≠ inputs, or a setting breaks its rule.</exception>
    public override ILayer<T> Create<T>(LayerShape shape, Activation<T> activation)
    {
        SettingRules.RequireSquare(shape, KindName);
        return new BatchNormLayer<T>(shape.Inputs, activation, shape.Bias, SettingRules.Checked(shape, Eps), SettingRules.Checked(shape, Momentum))
        {
            Training = shape.Setting(Training.Name, Training.Default) != 0,
        };
    }
}

/// <summary>
/// Batch normalisation of each feature over the batch, y = f(γ ⊙ x̂ + β). In training x̂ uses the batch's mean and
/// biased variance and the running statistics move toward the batch's mean and unbiased variance by the momentum; in
/// evaluation x̂ uses the running statistics. Saved as layers.{i}.weight, bias, running_mean and running_var; exported as
/// ONNX BatchNormalization (evaluation).
/// </summary>
public sealed class BatchNormLayer<T> : ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly LayerMode _mode = new();

    /// <summary>
    /// A batch norm over <paramref name="features"/> features in training mode, running mean 0 and variance 1, γ = 1 and
    /// β = 0 with <paramref name="affine"/>.
    /// </summary>
    /// <param name="features">Features per sample (at least 1).</param>
    /// <param name="activation">f, applied last (the identity for none).</param>
    /// <param name="affine">Whether the layer has the trained γ and β.</param>
    /// <param name="eps">ε, added to the variance.</param>
    /// <param name="momentum">How far each training batch moves the running statistics (PyTorch's convention).</param>
    /// <exception cref="ArgumentException"><paramref name="features"/> is less than 1.</exception>
    public BatchNormLayer(int features, Activation<T> activation, bool affine = true, double eps = 1e-5, double momentum = 0.1)
    {
        if (features < 1) throw new ArgumentException($"a batchnorm layer needs at least one feature, not {features}");
        Features = features;
        Activation = activation;
        var runningVar = new Tensor<T>(features);
        runningVar.Fill(T.One);
        Statistics = new BatchNormStatistics<T>(new Tensor<T>(features), runningVar, eps, momentum) { Mode = _mode };
        Buffers = [new("running_mean", Statistics.RunningMean), new("running_var", Statistics.RunningVar)];
        if (affine)
        {
            var w = new Tensor<T>(features);
            w.Fill(T.One);
            Weight = Var<T>.Parameter(w, "γ");
            Bias = Var<T>.Parameter(new Tensor<T>(features), "β");
            Parameters = [new("weight", Weight, ParameterRole.Scale), new("bias", Bias, ParameterRole.Bias)];
        }
        else Parameters = [];
    }

    /// <inheritdoc/>
    public string Kind => BatchNormKind.KindName;
    /// <summary>Features per sample, in and out (at least 1).</summary>
    public int Features { get; }
    /// <summary>The running mean and variance (saved as running_mean and running_var) with ε and the momentum; the op reads and updates them.</summary>
    public BatchNormStatistics<T> Statistics { get; }
    /// <summary>ε, added to the variance before the square root.</summary>
    public double Eps => Statistics.Eps;
    /// <summary>How far each training batch moves the running statistics (0 … 1).</summary>
    public double Momentum => Statistics.Momentum;
    /// <summary>γ, [features], starting at ones; null without the affine part.</summary>
    public Var<T>? Weight { get; }
    /// <summary>β, [features], starting at zeros; null without the affine part.</summary>
    public Var<T>? Bias { get; }
    /// <inheritdoc/>
    public Activation<T> Activation { get; }
    /// <inheritdoc/>
    public int Inputs => Features;
    /// <inheritdoc/>
    public int Outputs => Features;
    /// <summary>γ (saved as weight) and β (bias) when the layer has the affine part, else none.</summary>
    public IReadOnlyList<LayerParameter<T>> Parameters { get; }
    /// <summary>running_mean and running_var, [features] each.</summary>
    public IReadOnlyList<LayerBuffer<T>> Buffers { get; }
    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> Settings =>
        ImmutableDictionary<string, double>.Empty.Add("eps", Eps).Add("momentum", Momentum);

    /// <summary>Batch statistics (true) or running statistics (false); read by the op each time it runs.</summary>
    public bool Training { get => _mode.Training; set => _mode.Training = value; }

    /// <summary>In training mode each sample's output depends on the whole batch.</summary>
    public bool CouplesBatch => Training;

    /// <summary>A batch of one has no variance: training needs two samples (PyTorch refuses one too).</summary>
    public int MinimumBatch => Training ? 2 : 1;

    /// <summary>
    /// Evaluation with the running statistics as they are now: (x − mean) ⊙ 1/√(var + ε), then γ, β and f. (Folding
    /// them into a preceding dense layer's weight would save this pass but change the bits of the result.)
    /// </summary>
    public IInferenceStep<T>? CompileInference(ComputeContext context)
    {
        var rstd = new T[Features];
        Normalization.ReciprocalStd<T>(Statistics.RunningVar.Span, T.CreateChecked(Eps), rstd);
        return new BatchNormInferenceStep<T>(Statistics.RunningMean.Span.ToArray(), rstd, Weight?.Value.Span.ToArray(), Bias?.Value.Span.ToArray(), Activation);
    }

    /// <inheritdoc/>
    public LayerOutput<T> Forward(Var<T> x)
    {
        var z = Functional.BatchNorm(x, Statistics, Weight, Bias);
        var h = Activation.IsIdentity ? z : Functional.Activate(z, Activation);
        return new(z, h);
    }

    /// <summary>An ONNX BatchNormalization with the running statistics (evaluation), then the activation's nodes.</summary>
    public string ExportOnnx(IOnnxGraph graph, string input, string prefix, string? output)
    {
        var scale = Weight?.Value ?? Filled(T.One);
        var shift = Bias?.Value ?? Filled(T.Zero);
        var inputs = new List<string>
        {
            input,
            graph.Initializer(Weight is null ? $"{prefix}.scale" : $"{prefix}.weight", scale),
            graph.Initializer(Bias is null ? $"{prefix}.shift" : $"{prefix}.bias", shift),
            graph.Initializer($"{prefix}.running_mean", Statistics.RunningMean),
            graph.Initializer($"{prefix}.running_var", Statistics.RunningVar),
        };
        bool identity = Activation.IsIdentity;
        string z = graph.Node("BatchNormalization", inputs, identity && output is not null ? output : $"{prefix}.z",
            OnnxAttribute.Float("epsilon", (float)Eps), OnnxAttribute.Float("momentum", (float)(1 - Momentum)));
        return identity ? z : Activation.EmitOnnx(graph, z, output ?? $"{prefix}.h", prefix);
    }

    private Tensor<T> Filled(T value)
    {
        var t = new Tensor<T>(Features);
        t.Fill(value);
        return t;
    }

    /// <inheritdoc/>
    public ILayer<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut>
    {
        var copy = new BatchNormLayer<TOut>(Features, Activation.Cast<TOut>(), Weight is not null, Eps, Momentum) { Training = Training };
        if (Weight is not null)
        {
            Weight.Value.Cast<TOut>().Span.CopyTo(copy.Weight!.Value.Span);
            Bias!.Value.Cast<TOut>().Span.CopyTo(copy.Bias!.Value.Span);
        }
        Statistics.RunningMean.Cast<TOut>().Span.CopyTo(copy.Statistics.RunningMean.Span);
        Statistics.RunningVar.Cast<TOut>().Span.CopyTo(copy.Statistics.RunningVar.Span);
        return copy;
    }

    /// <inheritdoc/>
    public string Describe() => $"batchnorm {Features} {Activation.Name}{(Weight is null ? ", no affine" : "")}";

    /// <summary>The class, width, activation and settings, for debugging.</summary>
    public override string ToString() => $"BatchNormLayer({Features}, {Activation.Name}, eps {SettingRules.Format(Eps)}, momentum {SettingRules.Format(Momentum)})";
}

/// <summary>The kind of <see cref="DropoutLayer{T}"/>.</summary>
public sealed class DropoutKind : LayerKind
{
    /// <summary>The dropout kind's name in files: "dropout".</summary>
    public const string KindName = "dropout";
    /// <summary>p, the probability of dropping a unit in training: in [0, 1), default 0.5.</summary>
    public static readonly LayerSetting P = new("p", LayerSettingType.Number, 0.5, "the probability of dropping a unit") { Check = SettingRules.DropoutP };
    /// <summary>A fixed batch × features 0/1 mask used in place of random draws (a problem file gives it with its batch); not saved.</summary>
    public static readonly LayerSetting Mask = new("mask", LayerSettingType.BatchMatrix, 0, "a fixed 0/1 mask in place of random draws") { Saved = false };
    /// <inheritdoc/>
    public override string Name => KindName;
    /// <inheritdoc/>
    public override string TorchModule => "Dropout";
    /// <inheritdoc/>
    public override string FlopsRule => "0 at inference (1 per feature in training: the mask)";
    /// <inheritdoc/>
    public override IReadOnlyList<LayerSetting> Settings => [P, Mask];
    /// <summary>True: the output has the input's width.</summary>
    public override bool KeepsWidth => true;
    /// <summary>False: a dropout layer is never followed by an activation of its own.</summary>
    public override bool TakesActivation => false;

    /// <summary>A <see cref="DropoutLayer{T}"/> of the shape's width, with the fixed mask when the shape gives one.</summary>
    /// <exception cref="ArgumentException">The width is less than 1 or outputs ≠ inputs, a setting breaks its rule, an activation is given, or the mask is not batch × features of 0s and 1s.</exception>
    public override ILayer<T> Create<T>(LayerShape shape, Activation<T> activation)
    {
        SettingRules.RequireSquare(shape, KindName);
        if (!activation.IsIdentity) throw new ArgumentException($"a dropout layer takes no activation, not {activation.Name}");
        var layer = new DropoutLayer<T>(shape.Inputs, SettingRules.Checked(shape, P));
        if (shape.Matrices is not null && shape.Matrices.TryGetValue(Mask.Name, out var mask))
        {
            if (mask.Rank != 2 || mask.Dim(1) != shape.Inputs)
                throw new ArgumentException($"mask is {mask.ShapeString} but the layer has {shape.Inputs} features: expected batch × {shape.Inputs}");
            foreach (var v in mask.Span)
                if (v != 0 && v != 1) throw new ArgumentException($"mask holds {SettingRules.Format(v)}: a mask holds only 0 and 1");
            layer.Mask.Fixed = mask.Cast<T>();
        }
        return layer;
    }
}

/// <summary>
/// Inverted dropout: in training each unit is zeroed with probability p and the rest scaled by 1/(1 − p), so evaluation
/// (where the layer passes its input through) needs no rescaling. The masks come from a counter-based generator seeded
/// per run (<see cref="ILayer{T}.SeedRandom"/>), so a run is the same for a seed and thread count. No parameters; left
/// out of ONNX exports (inference).
/// </summary>
public sealed class DropoutLayer<T> : ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly LayerMode _mode = new();
    private static readonly Activation<T> NoActivation = new Identity<T>();

    /// <summary>A dropout layer over <paramref name="features"/> features, in training mode.</summary>
    /// <param name="features">Features per sample (at least 1).</param>
    /// <param name="p">The probability of dropping a unit, in [0, 1).</param>
    /// <exception cref="ArgumentException"><paramref name="features"/> is less than 1.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> is outside [0, 1).</exception>
    public DropoutLayer(int features, double p)
    {
        if (features < 1) throw new ArgumentException($"a dropout layer needs at least one feature, not {features}");
        Features = features;
        Mask = new DropoutMask<T>(p) { Mode = _mode };
    }

    /// <inheritdoc/>
    public string Kind => DropoutKind.KindName;
    /// <summary>Features per sample, in and out (at least 1).</summary>
    public int Features { get; }
    /// <summary>The probability of dropping a unit in training, in [0, 1).</summary>
    public double P => Mask.P;
    /// <summary>Where the masks come from (a fixed mask, or the seeded generator and its draw count).</summary>
    public DropoutMask<T> Mask { get; }
    /// <summary>The identity: dropout takes no activation.</summary>
    public Activation<T> Activation => NoActivation;
    /// <inheritdoc/>
    public int Inputs => Features;
    /// <inheritdoc/>
    public int Outputs => Features;
    /// <summary>None: dropout trains nothing.</summary>
    public IReadOnlyList<LayerParameter<T>> Parameters => [];
    /// <summary>None: the layer keeps no untrained state.</summary>
    public IReadOnlyList<LayerBuffer<T>> Buffers => [];
    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> Settings => ImmutableDictionary<string, double>.Empty.Add("p", P);

    /// <summary>Dropping units (true) or passing the input through (false).</summary>
    public bool Training { get => _mode.Training; set => _mode.Training = value; }

    /// <inheritdoc/>
    public void SeedRandom(ulong seed, long draws)
    {
        Mask.Seed = seed;
        Mask.Draws = draws;
    }

    /// <summary>The identity at inference: no step.</summary>
    public IInferenceStep<T>? CompileInference(ComputeContext context) => null;

    /// <inheritdoc/>
    public LayerOutput<T> Forward(Var<T> x)
    {
        var h = Functional.Dropout(x, Mask);
        return new(h, h);
    }

    /// <summary>Inference passes the input through: no node.</summary>
    public string ExportOnnx(IOnnxGraph graph, string input, string prefix, string? output) =>
        output is null ? input : graph.Node("Identity", [input], output);

    /// <inheritdoc/>
    public ILayer<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut>
    {
        var copy = new DropoutLayer<TOut>(Features, P) { Training = Training };
        copy.Mask.Seed = Mask.Seed;
        copy.Mask.Draws = Mask.Draws;
        copy.Mask.Fixed = Mask.Fixed?.Cast<TOut>();
        return copy;
    }

    /// <inheritdoc/>
    public string Describe() => $"dropout {Features} p={SettingRules.Format(P)}";

    /// <summary>The class, width, activation and settings, for debugging.</summary>
    public override string ToString() => $"DropoutLayer({Features}, p {SettingRules.Format(P)})";
}

/// <summary>A layer norm at inference: each row normalised, then γ and β, then f (z in scratch when f is not the identity).</summary>
public sealed class LayerNormInferenceStep<T>(int features, T eps, T[]? gamma, T[]? beta, Activation<T> activation)
    : IInferenceStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public int Inputs => features;
    /// <inheritdoc/>
    public int Outputs => features;

    /// <summary>Each row's 1/σ̂, and z when f is not the identity.</summary>
    public int ScratchLength(int rows) => rows + (activation.IsIdentity ? 0 : rows * features);

    /// <inheritdoc/>
    public void Run(ReadOnlySpan<T> x, Span<T> y, int rows, Span<T> scratch, object? state)
    {
        var rstd = scratch[..rows];
        var z = activation.IsIdentity ? y[..(rows * features)] : scratch.Slice(rows, rows * features);
        Normalization.NormalizeRows(x, z, rstd, rows, features, eps);
        Normalization.Affine<T>(z, gamma, beta, z, rows, features);
        if (!activation.IsIdentity) InferenceActivation.Apply(activation, z, y, features);
    }
}

/// <summary>A batch norm at inference: (x − running mean) ⊙ 1/√(running var + ε), then γ and β, then f.</summary>
public sealed class BatchNormInferenceStep<T>(T[] mean, T[] rstd, T[]? gamma, T[]? beta, Activation<T> activation)
    : IInferenceStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public int Inputs => mean.Length;
    /// <inheritdoc/>
    public int Outputs => mean.Length;

    /// <summary>rows × features for z when f is not the identity, otherwise 0.</summary>
    public int ScratchLength(int rows) => activation.IsIdentity ? 0 : rows * mean.Length;

    /// <inheritdoc/>
    public void Run(ReadOnlySpan<T> x, Span<T> y, int rows, Span<T> scratch, object? state)
    {
        int f = mean.Length;
        var z = activation.IsIdentity ? y[..(rows * f)] : scratch[..(rows * f)];
        Normalization.NormalizeColumns<T>(x, mean, rstd, z, rows, f);
        Normalization.Affine<T>(z, gamma, beta, z, rows, f);
        if (!activation.IsIdentity) InferenceActivation.Apply(activation, z, y, f);
    }
}
