using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Kernels;

namespace Backprop.Ops;

/// <summary>How a loss combines per-element terms, as PyTorch defines it.</summary>
public enum Reduction
{
    /// <summary>The sum of the terms divided by N (<see cref="LossOp{T}.Divisor"/>): a loss that does not grow with the batch.</summary>
    Mean,
    /// <summary>The plain sum of the terms.</summary>
    Sum,
}

/// <summary>Class-index targets for cross-entropy; the array may be refilled between replays of a tape.</summary>
public sealed class ClassTargets(int[] indices)
{
    /// <summary>One class index per row of the logits, each in [0, classes); replace or refill it before replaying the tape on another batch.</summary>
    public int[] Indices { get; set; } = indices;
}

/// <summary>Base of the fused losses: a scalar output from predictions and targets.</summary>
public abstract class LossOp<T>(Reduction reduction) : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Whether the terms are averaged or summed.</summary>
    public Reduction Reduction { get; } = reduction;
    /// <summary>The factor in front of Σ in the formulas: "(1/N)·" for the mean, empty for the sum.</summary>
    protected string Scale => Reduction == Reduction.Mean ? "(1/N)·" : "";
    /// <summary>The divisor at the end of the gradient formulas: "/N" for the mean, empty for the sum.</summary>
    protected string Over => Reduction == Reduction.Mean ? "/N" : "";
    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs) { Validate(inputs); return []; }
    /// <summary>Checks the operands' shapes (and targets) before the forward pass.</summary>
    /// <exception cref="ShapeMismatchException">The operands do not fit the loss; the message names the shapes.</exception>
    protected abstract void Validate(Var<T>[] inputs);
    /// <summary>The divisor of the mean reduction.</summary>
    public abstract int Count(Var<T>[] inputs);
    /// <summary>What N, the divisor of the mean reduction, counts (as explain words it).</summary>
    public virtual string CountMeaning => "the number of output elements";

    /// <summary>
    /// ∂L/∂(first input) with dL = 1, recomputed in float64 by the rule <see cref="Op{T}.GradFormulas"/> prints, from the
    /// values on the tape: explain's independent check of the tape's own gradient.
    /// </summary>
    public abstract Tensor<double> ReferenceGradient(Var<T>[] inputs);

    /// <summary>A float64 copy of <paramref name="t"/>, for <see cref="ReferenceGradient"/>.</summary>
    protected static Tensor<double> ToDouble(Tensor<T> t)
    {
        var r = new Tensor<double>(t.ShapeArray);
        var src = t.Span;
        var dst = r.Span;
        for (int i = 0; i < dst.Length; i++) dst[i] = double.CreateTruncating(src[i]);
        return r;
    }

    /// <summary>What the sum is divided by: N for the mean reduction (a weighted loss divides by its total weight), 1 for the sum.</summary>
    public virtual double Divisor(Var<T>[] inputs) => Reduction == Reduction.Mean ? Math.Max(1, Count(inputs)) : 1;
}

/// <summary>How a loss takes its target.</summary>
public enum LossTarget
{
    /// <summary>No target (loss "none": the objective is the sum of the outputs).</summary>
    None,
    /// <summary>A tensor of the output's shape.</summary>
    Values,
    /// <summary>One class index per row.</summary>
    ClassIndices,
}

/// <summary>
/// The numbers some losses take beside the reduction, with PyTorch's meaning: huber's δ, cross-entropy's per-class
/// weights (F.cross_entropy's weight) and BCE's per-output positive weights (pos_weight).
/// </summary>
public sealed record LossSettings
{
    /// <summary>Huber's δ, where the loss turns from quadratic to linear (PyTorch's default 1); must be positive.</summary>
    public double HuberDelta { get; init; } = 1.0;
    /// <summary>One weight per class; null: every class weighs 1.</summary>
    public double[]? ClassWeights { get; init; }
    /// <summary>One weight per output for the positive term; null: 1.</summary>
    public double[]? PosWeight { get; init; }

    /// <summary>δ = 1 and no weights: PyTorch's defaults.</summary>
    public static LossSettings Default { get; } = new();
}

/// <summary>
/// One kind of loss as problem files and options name it: the target it takes, the settings it reads, and how it
/// records itself on a tape. The formulas and the float64 reference gradient are facts of the <see cref="LossOp{T}"/> it records.
/// </summary>
public abstract class LossKind : INamedKind
{
    /// <summary>The canonical name, as problem files, model files and options write it ("mse", "cross_entropy", …).</summary>
    public abstract string Name { get; }
    /// <summary>What the loss compares the output with: values of the output's shape, class indices, or nothing.</summary>
    public abstract LossTarget Target { get; }

    /// <summary>The problem-file fields of <see cref="LossSettings"/> this loss reads ("delta", "class_weights", "pos_weight").</summary>
    public virtual IReadOnlyList<string> SettingNames => [];

    /// <summary>
    /// The activation this loss applies to its input itself ("softmax" for cross_entropy, "sigmoid" for
    /// bce_with_logits), so that a network trained with it ends in raw outputs (logits); null for a loss of the output as it is.
    /// </summary>
    public virtual string? AppliesToInput => null;

    /// <summary>
    /// Records the loss of <paramref name="output"/> against <paramref name="values"/> (for <see cref="LossTarget.Values"/>)
    /// or <paramref name="classes"/> (for <see cref="LossTarget.ClassIndices"/>); null for a loss that records nothing ("none").
    /// </summary>
    public abstract Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings = null)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>The objective is the sum of all outputs: no loss node, no target.</summary>
    public static LossKind None { get; } = new NoLoss();
    /// <summary>"mse": squared error against values (<see cref="Functional.Mse"/>).</summary>
    public static LossKind Mse { get; } = new MseLoss();
    /// <summary>"l1": absolute error against values (<see cref="Functional.L1"/>).</summary>
    public static LossKind L1 { get; } = new L1Loss();
    /// <summary>"huber": quadratic within δ (<see cref="LossSettings.HuberDelta"/>), linear beyond, against values (<see cref="Functional.Huber"/>).</summary>
    public static LossKind Huber { get; } = new HuberLoss();
    /// <summary>"cross_entropy": softmax cross-entropy of logits against class indices, optionally class-weighted (<see cref="LossSettings.ClassWeights"/>).</summary>
    public static LossKind CrossEntropy { get; } = new CrossEntropyLoss();
    /// <summary>"bce_with_logits": binary cross-entropy of each logit against a 0/1 value (multi-label), optionally with <see cref="LossSettings.PosWeight"/>.</summary>
    public static LossKind BceWithLogits { get; } = new BceWithLogitsLoss();

    private static Var<T> Values<T>(Var<T>? values) where T : unmanaged, IFloatingPointIeee754<T> =>
        values ?? throw new ArgumentNullException(nameof(values));

    private sealed class NoLoss : LossKind
    {
        public override string Name => "none";
        public override LossTarget Target => LossTarget.None;
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings) => null;
    }

    private sealed class MseLoss : LossKind
    {
        public override string Name => "mse";
        public override LossTarget Target => LossTarget.Values;
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings) =>
            Functional.Mse(output, Values(values), reduction);
    }

    private sealed class L1Loss : LossKind
    {
        public override string Name => "l1";
        public override LossTarget Target => LossTarget.Values;
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings) =>
            Functional.Apply(new L1LossOp<T>(reduction), output, Values(values));
    }

    private sealed class HuberLoss : LossKind
    {
        public override string Name => "huber";
        public override LossTarget Target => LossTarget.Values;
        public override IReadOnlyList<string> SettingNames => ["delta"];
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings) =>
            Functional.Apply(new HuberLossOp<T>(reduction, (settings ?? LossSettings.Default).HuberDelta), output, Values(values));
    }

    private sealed class CrossEntropyLoss : LossKind
    {
        public override string Name => "cross_entropy";
        public override LossTarget Target => LossTarget.ClassIndices;
        public override string? AppliesToInput => "softmax";
        public override IReadOnlyList<string> SettingNames => ["class_weights"];
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings) =>
            Functional.Apply(new CrossEntropyLossOp<T>(reduction, classes ?? throw new ArgumentNullException(nameof(classes)), settings?.ClassWeights), output);
    }

    private sealed class BceWithLogitsLoss : LossKind
    {
        public override string Name => "bce_with_logits";
        public override LossTarget Target => LossTarget.Values;
        public override string? AppliesToInput => "sigmoid";
        public override IReadOnlyList<string> SettingNames => ["pos_weight"];
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction, LossSettings? settings) =>
            Functional.Apply(new BceWithLogitsLossOp<T>(reduction, settings?.PosWeight), output, Values(values));
    }
}

/// <summary>
/// The losses that names select, immutable: <see cref="Default"/> holds the built-ins ("none" last);
/// <see cref="KindRegistry{TKind, TSelf}.With(TKind)"/> returns a new registry with one more (or a replaced) kind.
/// </summary>
public sealed class LossRegistry : KindRegistry<LossKind, LossRegistry>
{
    private LossRegistry(IEnumerable<LossKind> kinds) : base(kinds) { }

    /// <inheritdoc/>
    protected override LossRegistry WithKinds(IEnumerable<LossKind> kinds) => new(kinds);

    /// <summary>The built-ins: mse, l1, huber, cross_entropy, bce_with_logits and none.</summary>
    public static LossRegistry Default { get; } = new([LossKind.Mse, LossKind.L1, LossKind.Huber, LossKind.CrossEntropy, LossKind.BceWithLogits, LossKind.None]);
}

/// <summary>
/// A loss on the differences d = ŷ − t of an output and a target of its shape: L = Σ h(d) (the mean divides by the number
/// of elements), dŷ = h′(d)·dL and dt = −h′(d)·dL. A kind gives h, h′ and their formulas; the shape check, the passes
/// over the elements and the float64 reference gradient are this class's, once for all of them.
/// </summary>
public abstract class DifferenceLossOp<T>(Reduction reduction) : LossOp<T>(reduction) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["ŷ", "t"];

    /// <summary>h(d), one element's term of the sum.</summary>
    protected abstract T Term(T d);

    /// <summary>
    /// One element's gradient with respect to ŷ, h′(d)·<paramref name="k"/>, where <paramref name="k"/> is dL (over N
    /// for the mean) times <see cref="Factor"/>; the target's gradient is the same with −k.
    /// </summary>
    protected abstract T Gradient(T k, T d);

    /// <summary>A constant factor of h′ taken into k before the division by N (2 for the squared error), so that each
    /// element needs one multiply; 1 by default.</summary>
    protected virtual int Factor => 1;

    /// <summary>h′(d) in float64, for <see cref="ReferenceGradient"/>: the formula <see cref="Op{T}.GradFormulas"/> prints.</summary>
    protected abstract double ReferenceSlope(double d);

    /// <inheritdoc/>
    protected override void Validate(Var<T>[] inputs)
    {
        if (!inputs[0].Value.SameShape(inputs[1].Shape))
            throw new ShapeMismatchException($"{Name}: output is {inputs[0].ShapeString} but the target is {inputs[1].ShapeString}");
    }

    /// <inheritdoc/>
    public override int Count(Var<T>[] inputs) => inputs[0].Value.Length;

    /// <inheritdoc/>
    public override Tensor<double> ReferenceGradient(Var<T>[] inputs)
    {
        var pred = ToDouble(inputs[0].Value);
        var t = ToDouble(inputs[1].Value);
        double n = Divisor(inputs);
        var g = new Tensor<double>(pred.ShapeArray);
        for (int i = 0; i < g.Length; i++) g.Data[i] = ReferenceSlope(pred.Data[i] - t.Data[i]) / n;
        return g;
    }

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var y = inputs[0].Value.Data; var t = inputs[1].Value.Data;
        T s = T.Zero;
        for (int i = 0; i < y.Length; i++) s += Term(y[i] - t[i]);
        output.Data[0] = Reduction == Reduction.Mean ? s / T.CreateChecked(Math.Max(1, y.Length)) : s;
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var y = inputs[0].Value.Data; var t = inputs[1].Value.Data;
        T k = T.CreateChecked(Factor) * output.Grad.Data[0];
        if (Reduction == Reduction.Mean) k /= T.CreateChecked(Math.Max(1, y.Length));
        for (int which = 0; which < 2; which++)
        {
            if (!inputs[which].RequiresGrad) continue;
            var g = inputs[which].GradTarget(out bool acc).Data;
            T kk = which == 0 ? k : -k;
            for (int i = 0; i < y.Length; i++)
            {
                T v = Gradient(kk, y[i] - t[i]);
                g[i] = acc ? g[i] + v : v;
            }
        }
    }
}

/// <summary>Mean squared error; "mean" divides by the number of elements.</summary>
public sealed class MseLossOp<T>(Reduction reduction) : DifferenceLossOp<T>(reduction) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "mse";
    /// <inheritdoc/>
    public override string Formula => $"L = {Scale}Σ (ŷ − t)²";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => [$"dŷ = 2·(ŷ − t){Over}·dL", $"dt = −2·(ŷ − t){Over}·dL"];
    /// <inheritdoc/>
    protected override T Term(T d) => d * d;
    /// <inheritdoc/>
    protected override int Factor => 2;
    /// <inheritdoc/>
    protected override T Gradient(T k, T d) => k * d;
    /// <inheritdoc/>
    protected override double ReferenceSlope(double d) => 2 * d;
}

/// <summary>
/// Cross-entropy of logits against class indices, fused with log-softmax, with optional per-class weights w (PyTorch's
/// F.cross_entropy(weight=w)): each row's term is multiplied by its target's weight, and "mean" divides by the sum of
/// the targets' weights (by the batch size without weights).
/// </summary>
public sealed class CrossEntropyLossOp<T>(Reduction reduction, ClassTargets targets, double[]? classWeights = null) : LossOp<T>(reduction)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _probs;
    private readonly T[]? _weights = classWeights?.Select(T.CreateChecked).ToArray();
    private T _weightSum;
    /// <summary>The class index of each row, read on every forward and backward pass.</summary>
    public ClassTargets Targets { get; } = targets;
    /// <summary>The per-class weights, or null.</summary>
    public IReadOnlyList<double>? ClassWeights { get; } = classWeights;
    /// <inheritdoc/>
    public override string Name => "cross_entropy";
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["z"];
    /// <inheritdoc/>
    public override string Formula => (Reduction, _weights is null) switch
    {
        (Reduction.Mean, true) => "L = −(1/N)·Σ_i log softmax(z_i)[t_i]",
        (Reduction.Sum, true) => "L = −Σ_i log softmax(z_i)[t_i]",
        (Reduction.Mean, false) => "L = −(1/N)·Σ_i w[t_i]·log softmax(z_i)[t_i], N = Σ_i w[t_i]",
        _ => "L = −Σ_i w[t_i]·log softmax(z_i)[t_i]",
    };
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas =>
        [_weights is null ? $"dz = (softmax(z) − onehot(t)){Over}·dL" : $"dz_i = w[t_i]·(softmax(z_i) − onehot(t_i)){Over}·dL"];

    /// <summary>Row-wise softmax of the logits from the last forward pass.</summary>
    public Tensor<T>? Probabilities => _probs;

    /// <inheritdoc/>
    protected override void Validate(Var<T>[] inputs)
    {
        var z = inputs[0].Value;
        if (z.Rank != 2) throw new ShapeMismatchException($"cross_entropy: logits are {z.ShapeString}, expected batch × classes");
        if (Targets.Indices.Length != z.Dim(0))
            throw new ShapeMismatchException($"cross_entropy: {Targets.Indices.Length} targets for a batch of {z.Dim(0)}");
        if (_weights is not null && _weights.Length != z.Dim(1))
            throw new ShapeMismatchException($"cross_entropy: {_weights.Length} class weights for {z.Dim(1)} classes");
        for (int i = 0; i < Targets.Indices.Length; i++)
            if ((uint)Targets.Indices[i] >= (uint)z.Dim(1))
                throw new ArgumentOutOfRangeException(nameof(targets), $"cross_entropy: target[{i}] = {Targets.Indices[i]} is not a class index in 0..{z.Dim(1) - 1}");
    }

    /// <inheritdoc/>
    public override int Count(Var<T>[] inputs) => inputs[0].Value.Dim(0);
    /// <inheritdoc/>
    public override string CountMeaning => _weights is null ? "the batch size" : "the sum of the targets' class weights";

    /// <inheritdoc/>
    public override double Divisor(Var<T>[] inputs)
    {
        if (Reduction == Reduction.Sum) return 1;
        if (ClassWeights is null) return Math.Max(1, Count(inputs));
        double w = 0;
        foreach (int t in Targets.Indices) w += ClassWeights[t];
        return w;
    }

    private double Weight(int cls) => ClassWeights is null ? 1 : ClassWeights[cls];

    /// <inheritdoc/>
    public override Tensor<double> ReferenceGradient(Var<T>[] inputs)
    {
        var pred = ToDouble(inputs[0].Value);
        double n = Divisor(inputs);
        int rows = pred.Dim(0), c = pred.Dim(1);
        var g = new Tensor<double>(pred.ShapeArray);
        for (int r = 0; r < rows; r++)
        {
            // softmax of the row in float64, shifted by its maximum
            double max = double.NegativeInfinity;
            for (int j = 0; j < c; j++) max = Math.Max(max, pred.Data[r * c + j]);
            double sum = 0;
            for (int j = 0; j < c; j++) sum += g.Data[r * c + j] = Math.Exp(pred.Data[r * c + j] - max);
            double w = Weight(Targets.Indices[r]);
            for (int j = 0; j < c; j++) g.Data[r * c + j] = w * g.Data[r * c + j] / sum / n;
            g.Data[r * c + Targets.Indices[r]] -= w / n;
        }
        return g;
    }

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var z = inputs[0].Value;
        int n = z.Dim(0), c = z.Dim(1);
        _probs ??= new Tensor<T>(z.ShapeArray);
        var t = Targets.Indices;
        T loss = T.Zero;
        // shift each row by its maximum (stability), then one vectorised exp over the whole batch
        for (int i = 0; i < n; i++)
        {
            var zr = z.Data.Slice(i * c, c);
            var pr = _probs.Data.Slice(i * c, c);
            T max = zr[0];
            for (int j = 1; j < c; j++) if (zr[j] > max) max = zr[j];
            for (int j = 0; j < c; j++) pr[j] = zr[j] - max;
        }
        T weightSum = T.Zero;
        for (int i = 0; i < n; i++)
        {
            T w = _weights is null ? T.One : _weights[t[i]];
            loss -= w * _probs.Data[i * c + t[i]];
            weightSum += w;
        }
        TensorPrimitives.Exp(_probs.Data, _probs.Data);
        for (int i = 0; i < n; i++)
        {
            var pr = _probs.Data.Slice(i * c, c);
            T sum = T.Zero;
            for (int j = 0; j < c; j++) sum += pr[j];
            T w = _weights is null ? T.One : _weights[t[i]];
            loss += w * T.Log(sum);   // w·(log Σ e^(z − max) − (z_t − max))
            T inv = T.One / sum;
            for (int j = 0; j < c; j++) pr[j] *= inv;
        }
        _weightSum = _weights is null ? T.CreateChecked(Math.Max(1, n)) : weightSum;
        output.Data[0] = Reduction == Reduction.Mean ? loss / _weightSum : loss;
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var Z = inputs[0];
        if (!Z.RequiresGrad) return;
        int n = Z.Value.Dim(0), c = Z.Value.Dim(1);
        T k = output.Grad.Data[0];
        if (Reduction == Reduction.Mean) k /= _weightSum;
        var g = Z.GradTarget(out bool acc).Data;
        var p = _probs!.Data;
        var t = Targets.Indices;
        if (_weights is null)
        {
            if (acc) TensorPrimitives.MultiplyAdd(p, k, g, g);
            else TensorPrimitives.Multiply(p, k, g);
            for (int i = 0; i < n; i++) g[i * c + t[i]] -= k;
            return;
        }
        for (int i = 0; i < n; i++)
        {
            T kw = k * _weights[t[i]];
            var pr = p.Slice(i * c, c);
            var gr = g.Slice(i * c, c);
            if (acc) TensorPrimitives.MultiplyAdd(pr, kw, gr, gr);
            else TensorPrimitives.Multiply(pr, kw, gr);
            gr[t[i]] -= kw;
        }
    }
}

/// <summary>
/// Binary cross-entropy on logits, in the stable form, with an optional positive weight p per output (PyTorch's
/// pos_weight): ℓ = (1 − t)·z + (1 + (p − 1)·t)·log(1 + e^(−z)), log(1 + e^(−z)) = max(−z, 0) + log(1 + e^(−|z|)).
/// </summary>
public sealed class BceWithLogitsLossOp<T>(Reduction reduction, double[]? posWeight = null) : LossOp<T>(reduction)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[]? _pw = posWeight?.Select(T.CreateChecked).ToArray();
    /// <summary>The positive weight of each output column, or null.</summary>
    public IReadOnlyList<double>? PosWeight { get; } = posWeight;
    /// <inheritdoc/>
    public override string Name => "bce_with_logits";
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["z", "t"];
    /// <inheritdoc/>
    public override string Formula => _pw is null
        ? $"L = {Scale}Σ [max(z, 0) − z·t + log(1 + e^(−|z|))]"
        : $"L = {Scale}Σ [(1 − t)·z + (1 + (p − 1)·t)·log(1 + e^(−z))], p = pos_weight of the column";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => _pw is null
        ? [$"dz = (σ(z) − t){Over}·dL", $"dt = −z{Over}·dL"]
        : [$"dz = ((1 + (p − 1)·t)·σ(z) − p·t){Over}·dL", $"dt = (−z + (p − 1)·log(1 + e^(−z))){Over}·dL"];

    /// <inheritdoc/>
    protected override void Validate(Var<T>[] inputs)
    {
        if (!inputs[0].Value.SameShape(inputs[1].Shape))
            throw new ShapeMismatchException($"bce_with_logits: output is {inputs[0].ShapeString} but the target is {inputs[1].ShapeString}");
        int cols = inputs[0].Value.Rank == 2 ? inputs[0].Value.Dim(1) : inputs[0].Value.Length;
        if (_pw is not null && _pw.Length != cols)
            throw new ShapeMismatchException($"bce_with_logits: {_pw.Length} positive weights for {cols} outputs");
    }

    /// <inheritdoc/>
    public override int Count(Var<T>[] inputs) => inputs[0].Value.Length;

    /// <summary>The positive weight of flat element <paramref name="i"/> (1 without weights).</summary>
    private T Pw(int i) => _pw is null ? T.One : _pw[i % _pw.Length];

    /// <inheritdoc/>
    public override Tensor<double> ReferenceGradient(Var<T>[] inputs)
    {
        var pred = ToDouble(inputs[0].Value);
        var t = ToDouble(inputs[1].Value);
        double n = Divisor(inputs);
        var g = new Tensor<double>(pred.ShapeArray);
        for (int i = 0; i < g.Length; i++)
        {
            double p = PosWeight is null ? 1 : PosWeight[i % PosWeight.Count], s = 1 / (1 + Math.Exp(-pred.Data[i]));
            g.Data[i] = ((1 + (p - 1) * t.Data[i]) * s - p * t.Data[i]) / n;
        }
        return g;
    }

    /// <summary>log(1 + e^(−z)) without overflow.</summary>
    private static T SoftplusOfMinus(T z) => T.Max(-z, T.Zero) + SpecialFunctions.Log1P(T.Exp(-T.Abs(z)));

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var z = inputs[0].Value.Data; var t = inputs[1].Value.Data;
        T s = T.Zero;
        if (_pw is null)
            for (int i = 0; i < z.Length; i++)
                s += T.Max(z[i], T.Zero) - z[i] * t[i] + SpecialFunctions.Log1P(T.Exp(-T.Abs(z[i])));
        else
            for (int i = 0; i < z.Length; i++)
                s += (T.One - t[i]) * z[i] + (T.One + (Pw(i) - T.One) * t[i]) * SoftplusOfMinus(z[i]);
        output.Data[0] = Reduction == Reduction.Mean ? s / T.CreateChecked(Math.Max(1, z.Length)) : s;
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var z = inputs[0].Value.Data; var t = inputs[1].Value.Data;
        T k = output.Grad.Data[0];
        if (Reduction == Reduction.Mean) k /= T.CreateChecked(Math.Max(1, z.Length));
        if (inputs[0].RequiresGrad)
        {
            var g = inputs[0].GradTarget(out bool acc).Data;
            for (int i = 0; i < z.Length; i++)
            {
                T sig = T.One / (T.One + T.Exp(-z[i]));
                T v = _pw is null ? k * (sig - t[i]) : k * ((T.One + (Pw(i) - T.One) * t[i]) * sig - Pw(i) * t[i]);
                g[i] = acc ? g[i] + v : v;
            }
        }
        if (inputs[1].RequiresGrad)
        {
            var g = inputs[1].GradTarget(out bool acc).Data;
            for (int i = 0; i < z.Length; i++)
            {
                T v = _pw is null ? -k * z[i] : k * (-z[i] + (Pw(i) - T.One) * SoftplusOfMinus(z[i]));
                g[i] = acc ? g[i] + v : v;
            }
        }
    }
}

/// <summary>Mean absolute error (PyTorch's F.l1_loss): its derivative at ŷ = t is 0, as sign(0) is.</summary>
public sealed class L1LossOp<T>(Reduction reduction) : DifferenceLossOp<T>(reduction) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "l1";
    /// <inheritdoc/>
    public override string Formula => $"L = {Scale}Σ |ŷ − t|";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => [$"dŷ = sign(ŷ − t){Over}·dL", $"dt = −sign(ŷ − t){Over}·dL"];
    /// <inheritdoc/>
    protected override T Term(T d) => T.Abs(d);
    /// <inheritdoc/>
    protected override T Gradient(T k, T d) => d > T.Zero ? k : d < T.Zero ? -k : T.Zero;
    /// <inheritdoc/>
    protected override double ReferenceSlope(double d) => Math.Sign(d);
}

/// <summary>
/// Huber loss with threshold δ (PyTorch's F.huber_loss): ½d² where |d| &lt; δ, δ·(|d| − ½δ) beyond, d = ŷ − t.
/// Its derivative is d inside and δ·sign(d) beyond, continuous at |d| = δ.
/// </summary>
public sealed class HuberLossOp<T>(Reduction reduction, double delta) : DifferenceLossOp<T>(reduction) where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _delta = T.CreateChecked(delta), _half = T.CreateChecked(0.5);

    /// <summary>δ, where the loss turns from quadratic to linear.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Thrown at construction when δ is not a positive finite number.</exception>
    public double Delta { get; } = delta > 0 && double.IsFinite(delta) ? delta : throw new ArgumentOutOfRangeException(nameof(delta), $"huber delta = {delta} must be positive");
    /// <inheritdoc/>
    public override string Name => "huber";
    /// <inheritdoc/>
    public override string Formula => $"L = {Scale}Σ h(ŷ − t), h(d) = ½d² for |d| < δ, δ·(|d| − ½δ) otherwise, δ = {Delta}";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => [$"dŷ = clamp(ŷ − t, −δ, δ){Over}·dL", $"dt = −clamp(ŷ − t, −δ, δ){Over}·dL"];

    /// <inheritdoc/>
    protected override T Term(T d)
    {
        T a = T.Abs(d);
        return a < _delta ? _half * a * a : _delta * (a - _half * _delta);
    }

    /// <inheritdoc/>
    protected override T Gradient(T k, T d) => k * T.Clamp(d, -_delta, _delta);
    /// <inheritdoc/>
    protected override double ReferenceSlope(double d) => Math.Clamp(d, -Delta, Delta);
}

