using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Kernels;

namespace Backprop.Ops;

/// <summary>How a loss combines per-element terms, as PyTorch defines it.</summary>
public enum Reduction { Mean, Sum }

/// <summary>Class-index targets for cross-entropy; the array may be refilled between replays of a tape.</summary>
public sealed class ClassTargets(int[] indices)
{
    public int[] Indices { get; set; } = indices;
}

/// <summary>Base of the fused losses: a scalar output from predictions and targets.</summary>
public abstract class LossOp<T>(Reduction reduction) : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public Reduction Reduction { get; } = reduction;
    protected string Scale => Reduction == Reduction.Mean ? "(1/N)·" : "";
    protected string Over => Reduction == Reduction.Mean ? "/N" : "";
    public override int[] OutputShape(Var<T>[] inputs) { Validate(inputs); return []; }
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

    protected static Tensor<double> ToDouble(Tensor<T> t)
    {
        var r = new Tensor<double>(t.ShapeArray);
        var src = t.Span;
        var dst = r.Span;
        for (int i = 0; i < dst.Length; i++) dst[i] = double.CreateTruncating(src[i]);
        return r;
    }

    protected double Divisor(Var<T>[] inputs) => Reduction == Reduction.Mean ? Math.Max(1, Count(inputs)) : 1;
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
/// One kind of loss as problem files and options name it: the target it takes and how it records itself on a tape.
/// The formulas and the float64 reference gradient are facts of the <see cref="LossOp{T}"/> it records.
/// </summary>
public abstract class LossKind : INamedKind
{
    public abstract string Name { get; }
    public abstract LossTarget Target { get; }

    /// <summary>
    /// Records the loss of <paramref name="output"/> against <paramref name="values"/> (for <see cref="LossTarget.Values"/>)
    /// or <paramref name="classes"/> (for <see cref="LossTarget.ClassIndices"/>); null for a loss that records nothing ("none").
    /// </summary>
    public abstract Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction)
        where T : unmanaged, IFloatingPointIeee754<T>;

    public override string ToString() => Name;

    /// <summary>The objective is the sum of all outputs: no loss node, no target.</summary>
    public static LossKind None { get; } = new NoLoss();
    public static LossKind Mse { get; } = new MseLoss();
    public static LossKind CrossEntropy { get; } = new CrossEntropyLoss();
    public static LossKind BceWithLogits { get; } = new BceWithLogitsLoss();

    private sealed class NoLoss : LossKind
    {
        public override string Name => "none";
        public override LossTarget Target => LossTarget.None;
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction) => null;
    }

    private sealed class MseLoss : LossKind
    {
        public override string Name => "mse";
        public override LossTarget Target => LossTarget.Values;
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction) =>
            Functional.Mse(output, values ?? throw new ArgumentNullException(nameof(values)), reduction);
    }

    private sealed class CrossEntropyLoss : LossKind
    {
        public override string Name => "cross_entropy";
        public override LossTarget Target => LossTarget.ClassIndices;
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction) =>
            Functional.CrossEntropy(output, classes ?? throw new ArgumentNullException(nameof(classes)), reduction);
    }

    private sealed class BceWithLogitsLoss : LossKind
    {
        public override string Name => "bce_with_logits";
        public override LossTarget Target => LossTarget.Values;
        public override Var<T>? Record<T>(Var<T> output, Var<T>? values, ClassTargets? classes, Reduction reduction) =>
            Functional.BceWithLogits(output, values ?? throw new ArgumentNullException(nameof(values)), reduction);
    }
}

/// <summary>
/// The losses that names select, immutable: <see cref="Default"/> holds the built-ins ("none" last);
/// <see cref="With"/> returns a new registry with one more (or a replaced) kind.
/// </summary>
public sealed class LossRegistry : KindRegistry<LossKind, LossRegistry>
{
    private LossRegistry(IEnumerable<LossKind> kinds) : base(kinds) { }

    protected override LossRegistry WithKinds(IEnumerable<LossKind> kinds) => new(kinds);

    public static LossRegistry Default { get; } = new([LossKind.Mse, LossKind.CrossEntropy, LossKind.BceWithLogits, LossKind.None]);
}

/// <summary>Mean squared error; "mean" divides by the number of elements.</summary>
public sealed class MseLossOp<T>(Reduction reduction) : LossOp<T>(reduction) where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "mse";
    public override IReadOnlyList<string> InputNames => ["ŷ", "t"];
    public override string Formula => $"L = {Scale}Σ (ŷ − t)²";
    public override IReadOnlyList<string> GradFormulas => [$"dŷ = 2·(ŷ − t){Over}·dL", $"dt = −2·(ŷ − t){Over}·dL"];

    protected override void Validate(Var<T>[] inputs)
    {
        if (!inputs[0].Value.SameShape(inputs[1].Shape))
            throw new ShapeMismatchException($"mse: output is {inputs[0].ShapeString} but the target is {inputs[1].ShapeString}");
    }

    public override int Count(Var<T>[] inputs) => inputs[0].Value.Length;

    public override Tensor<double> ReferenceGradient(Var<T>[] inputs)
    {
        var pred = ToDouble(inputs[0].Value);
        var t = ToDouble(inputs[1].Value);
        double n = Divisor(inputs);
        var g = new Tensor<double>(pred.ShapeArray);
        for (int i = 0; i < g.Length; i++) g.Data[i] = 2 * (pred.Data[i] - t.Data[i]) / n;
        return g;
    }

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var y = inputs[0].Value.Data; var t = inputs[1].Value.Data;
        T s = T.Zero;
        for (int i = 0; i < y.Length; i++) { T d = y[i] - t[i]; s += d * d; }
        output.Data[0] = Reduction == Reduction.Mean ? s / T.CreateChecked(Math.Max(1, y.Length)) : s;
    }

    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var y = inputs[0].Value.Data; var t = inputs[1].Value.Data;
        T k = T.CreateChecked(2) * output.Grad.Data[0];
        if (Reduction == Reduction.Mean) k /= T.CreateChecked(Math.Max(1, y.Length));
        for (int which = 0; which < 2; which++)
        {
            if (!inputs[which].RequiresGrad) continue;
            var g = inputs[which].GradTarget(out bool acc).Data;
            T kk = which == 0 ? k : -k;
            for (int i = 0; i < y.Length; i++)
            {
                T v = kk * (y[i] - t[i]);
                g[i] = acc ? g[i] + v : v;
            }
        }
    }
}

/// <summary>Cross-entropy of logits against class indices, fused with log-softmax; "mean" divides by the batch.</summary>
public sealed class CrossEntropyLossOp<T>(Reduction reduction, ClassTargets targets) : LossOp<T>(reduction)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _probs;
    public ClassTargets Targets { get; } = targets;
    public override string Name => "cross_entropy";
    public override IReadOnlyList<string> InputNames => ["z"];
    public override string Formula => Reduction == Reduction.Mean
        ? "L = −(1/N)·Σ_i log softmax(z_i)[t_i]"
        : "L = −Σ_i log softmax(z_i)[t_i]";
    public override IReadOnlyList<string> GradFormulas => [$"dz = (softmax(z) − onehot(t)){Over}·dL"];

    /// <summary>Row-wise softmax of the logits from the last forward pass.</summary>
    public Tensor<T>? Probabilities => _probs;

    protected override void Validate(Var<T>[] inputs)
    {
        var z = inputs[0].Value;
        if (z.Rank != 2) throw new ShapeMismatchException($"cross_entropy: logits are {z.ShapeString}, expected batch × classes");
        if (Targets.Indices.Length != z.Dim(0))
            throw new ShapeMismatchException($"cross_entropy: {Targets.Indices.Length} targets for a batch of {z.Dim(0)}");
        for (int i = 0; i < Targets.Indices.Length; i++)
            if ((uint)Targets.Indices[i] >= (uint)z.Dim(1))
                throw new ArgumentOutOfRangeException(nameof(targets), $"cross_entropy: target[{i}] = {Targets.Indices[i]} is not a class index in 0..{z.Dim(1) - 1}");
    }

    public override int Count(Var<T>[] inputs) => inputs[0].Value.Dim(0);
    public override string CountMeaning => "the batch size";

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
            for (int j = 0; j < c; j++) g.Data[r * c + j] = g.Data[r * c + j] / sum / n;
            g.Data[r * c + Targets.Indices[r]] -= 1 / n;
        }
        return g;
    }

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
            loss -= pr[t[i]];
        }
        TensorPrimitives.Exp(_probs.Data, _probs.Data);
        for (int i = 0; i < n; i++)
        {
            var pr = _probs.Data.Slice(i * c, c);
            T sum = T.Zero;
            for (int j = 0; j < c; j++) sum += pr[j];
            loss += T.Log(sum);   // log Σ e^(z − max) − (z_t − max)
            T inv = T.One / sum;
            for (int j = 0; j < c; j++) pr[j] *= inv;
        }
        output.Data[0] = Reduction == Reduction.Mean ? loss / T.CreateChecked(Math.Max(1, n)) : loss;
    }

    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var Z = inputs[0];
        if (!Z.RequiresGrad) return;
        int n = Z.Value.Dim(0), c = Z.Value.Dim(1);
        T k = output.Grad.Data[0];
        if (Reduction == Reduction.Mean) k /= T.CreateChecked(Math.Max(1, n));
        var g = Z.GradTarget(out bool acc).Data;
        var p = _probs!.Data;
        var t = Targets.Indices;
        if (acc) TensorPrimitives.MultiplyAdd(p, k, g, g);
        else TensorPrimitives.Multiply(p, k, g);
        for (int i = 0; i < n; i++) g[i * c + t[i]] -= k;
    }
}

/// <summary>Binary cross-entropy on logits, in the stable form max(z,0) − z·t + log(1 + e^(−|z|)).</summary>
public sealed class BceWithLogitsLossOp<T>(Reduction reduction) : LossOp<T>(reduction) where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "bce_with_logits";
    public override IReadOnlyList<string> InputNames => ["z", "t"];
    public override string Formula => $"L = {Scale}Σ [max(z, 0) − z·t + log(1 + e^(−|z|))]";
    public override IReadOnlyList<string> GradFormulas => [$"dz = (σ(z) − t){Over}·dL", $"dt = −z{Over}·dL"];

    protected override void Validate(Var<T>[] inputs)
    {
        if (!inputs[0].Value.SameShape(inputs[1].Shape))
            throw new ShapeMismatchException($"bce_with_logits: output is {inputs[0].ShapeString} but the target is {inputs[1].ShapeString}");
    }

    public override int Count(Var<T>[] inputs) => inputs[0].Value.Length;

    public override Tensor<double> ReferenceGradient(Var<T>[] inputs)
    {
        var pred = ToDouble(inputs[0].Value);
        var t = ToDouble(inputs[1].Value);
        double n = Divisor(inputs);
        var g = new Tensor<double>(pred.ShapeArray);
        for (int i = 0; i < g.Length; i++) g.Data[i] = (1 / (1 + Math.Exp(-pred.Data[i])) - t.Data[i]) / n;
        return g;
    }

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var z = inputs[0].Value.Data; var t = inputs[1].Value.Data;
        T s = T.Zero;
        for (int i = 0; i < z.Length; i++)
            s += T.Max(z[i], T.Zero) - z[i] * t[i] + SpecialFunctions.Log1P(T.Exp(-T.Abs(z[i])));
        output.Data[0] = Reduction == Reduction.Mean ? s / T.CreateChecked(Math.Max(1, z.Length)) : s;
    }

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
                T v = k * (T.One / (T.One + T.Exp(-z[i])) - t[i]);
                g[i] = acc ? g[i] + v : v;
            }
        }
        if (inputs[1].RequiresGrad)
        {
            var g = inputs[1].GradTarget(out bool acc).Data;
            for (int i = 0; i < z.Length; i++)
            {
                T v = -k * z[i];
                g[i] = acc ? g[i] + v : v;
            }
        }
    }
}
