using System.Numerics;
using System.Numerics.Tensors;

namespace Backprop;

/// <summary>
/// An activation function: its forward map, its derivative and the formulas of both, as printed by explain.
/// Element-wise except for softmax, which couples the entries of a row.
/// </summary>
public abstract class Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The name used in problem files and on the command line, e.g. "leaky_relu".</summary>
    public abstract string Name { get; }
    /// <summary>The symbol in derivations, e.g. "σ".</summary>
    public abstract string Symbol { get; }
    public abstract string Formula { get; }
    public abstract string DerivativeFormula { get; }
    public virtual bool IsElementwise => true;
    public virtual bool IsIdentity => false;

    /// <summary>
    /// Whether <see cref="Forward"/> on any piece of a tensor gives the same bits as on the whole, so a fused layer
    /// may apply it block by block. False where TensorPrimitives does the work: it rounds spans shorter than a
    /// vector differently from long ones (measured: sigmoid and tanh on 1–3 floats).
    /// </summary>
    public virtual bool ForwardIsPiecewiseExact => IsElementwise;

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

    public override string ToString() => Name;
}

public static class Activations
{
    public static readonly System.Collections.Immutable.ImmutableArray<string> Names =
        ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu", "softmax"];

    /// <summary>The activation called <paramref name="name"/>; null if there is none.</summary>
    public static Activation<T>? TryCreate<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        name switch
        {
            "identity" or "linear" or "none" => new Identity<T>(),
            "sigmoid" => new Sigmoid<T>(),
            "tanh" => new Tanh<T>(),
            "relu" => new Relu<T>(),
            "leaky_relu" => new LeakyRelu<T>(parameter ?? 0.01),
            "elu" => new Elu<T>(parameter ?? 1.0),
            "softplus" => new Softplus<T>(),
            "gelu" => new Gelu<T>(),
            "silu" => new Silu<T>(),
            "softmax" => new Softmax<T>(),
            _ => null,
        };

    public static Activation<T> Create<T>(string name, double? parameter = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        TryCreate<T>(name, parameter) ?? throw new ArgumentException($"unknown activation '{name}' (known: {string.Join(", ", Names)})");
}

public sealed class Identity<T> : Activation<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "identity";
    public override string Symbol => "id";
    public override string Formula => "id(z) = z";
    public override string DerivativeFormula => "id′(z) = 1";
    public override bool IsIdentity => true;
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

    public override void Forward(Var<T>[] inputs, Tensor<T> output) =>
        Activation.Forward(inputs[0].Value.Data, output.Data, Cols(output));

    public override void Backward(Var<T>[] inputs, Var<T> output)
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
