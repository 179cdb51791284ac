using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Kernels;

namespace Backprop.Ops;

/// <summary>Shared shape logic of the element-wise binary ops, which broadcast as NumPy does.</summary>
public abstract class BroadcastBinaryOp<T> : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _scratch;

    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["A", "B"];

    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs) =>
        Broadcast.Shape(inputs[0].Shape, inputs[1].Shape, Name);

    /// <summary>An output-shaped buffer owned by this op, reused across passes.</summary>
    protected Tensor<T> Scratch(Tensor<T> like) => _scratch ??= new Tensor<T>(like.ShapeArray);

    /// <summary>out = f(a, b) with broadcasting; fast paths for equal shapes, scalars and bias rows.</summary>
    protected static void Apply(Tensor<T> a, Tensor<T> b, Tensor<T> output,
        TensorPrimitivesBinary same, Func<T, T, T> f)
    {
        var ka = Broadcast.Classify(a.Shape, output.Shape);
        var kb = Broadcast.Classify(b.Shape, output.Shape);
        if (ka == Broadcast.Kind.Same && kb == Broadcast.Kind.Same)
        {
            same(a.Data, b.Data, output.Data);
            return;
        }
        if (ka == Broadcast.Kind.Same && kb == Broadcast.Kind.RowVector)
        {
            int n = b.Length;
            for (int r = 0; r < output.Length; r += n) same(a.Data.Slice(r, n), b.Data, output.Data.Slice(r, n));
            return;
        }
        var sa = Broadcast.Strides(a.Shape, output.Shape);
        var sb = Broadcast.Strides(b.Shape, output.Shape);
        var ad = a.Segment; var bd = b.Segment; var od = output.Segment;
        Broadcast.ForEach(output.Shape, sa, sb, (o, ia, ib) => od[o] = f(ad[ia], bd[ib]));
    }

    /// <summary>An element-wise kernel on equal-length spans, such as <c>TensorPrimitives.Add</c>: the fast path of <see cref="Apply"/>.</summary>
    public delegate void TensorPrimitivesBinary(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> destination);
}

/// <summary>Y = A + B with NumPy broadcasting; each gradient is dY summed over the axes its operand was broadcast along.</summary>
public sealed class AddOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "add";
    /// <inheritdoc/>
    public override string Formula => "Y = A + B";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dA = dY (summed over broadcast axes)", "dB = dY (summed over broadcast axes)"];

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Add, static (x, y) => x + y);

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var dy = output.Grad;
        for (int i = 0; i < 2; i++)
            if (inputs[i].RequiresGrad)
                Broadcast.SumTo(dy, inputs[i].GradTarget(out bool acc), acc, T.One);
    }
}

/// <summary>Y = A − B with NumPy broadcasting.</summary>
public sealed class SubOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "sub";
    /// <inheritdoc/>
    public override string Formula => "Y = A − B";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dA = dY (summed over broadcast axes)", "dB = −dY (summed over broadcast axes)"];

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Subtract, static (x, y) => x - y);

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var dy = output.Grad;
        if (inputs[0].RequiresGrad) Broadcast.SumTo(dy, inputs[0].GradTarget(out bool a0), a0, T.One);
        if (inputs[1].RequiresGrad) Broadcast.SumTo(dy, inputs[1].GradTarget(out bool a1), a1, -T.One);
    }
}

/// <summary>Y = A ⊙ B, the element-wise product, with NumPy broadcasting.</summary>
public sealed class MulOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "mul";
    /// <inheritdoc/>
    public override string Formula => "Y = A ⊙ B";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dA = dY ⊙ B", "dB = dY ⊙ A"];

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Multiply, static (x, y) => x * y);

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var dy = output.Grad;
        var tmp = Scratch(dy);
        for (int i = 0; i < 2; i++)
        {
            if (!inputs[i].RequiresGrad) continue;
            Apply(dy, inputs[1 - i].Value, tmp, TensorPrimitives.Multiply, static (x, y) => x * y);
            Broadcast.SumTo(tmp, inputs[i].GradTarget(out bool acc), acc, T.One);
        }
    }
}

/// <summary>Y = A ⊘ B element-wise with NumPy broadcasting; the gradient of B is computed as −dY ⊙ Y ⊘ B from the output.</summary>
public sealed class DivOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "div";
    /// <inheritdoc/>
    public override string Formula => "Y = A ⊘ B";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dA = dY ⊘ B", "dB = −dY ⊙ A ⊘ B²"];

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Divide, static (x, y) => x / y);

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var dy = output.Grad;
        var tmp = Scratch(dy);
        if (inputs[0].RequiresGrad)
        {
            Apply(dy, inputs[1].Value, tmp, TensorPrimitives.Divide, static (x, y) => x / y);
            Broadcast.SumTo(tmp, inputs[0].GradTarget(out bool acc), acc, T.One);
        }
        if (inputs[1].RequiresGrad)
        {
            // −dY·A/B² = −dY·Y/B, with Y the forward output
            Apply(dy, output.Value, tmp, TensorPrimitives.Multiply, static (x, y) => x * y);
            Apply(tmp, inputs[1].Value, tmp, TensorPrimitives.Divide, static (x, y) => x / y);
            Broadcast.SumTo(tmp, inputs[1].GradTarget(out bool acc), acc, -T.One);
        }
    }
}

/// <summary>Element-wise unary ops whose derivative is a closed form in x and y.</summary>
public abstract class ElementwiseOp<T> : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _scratch;
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["X"];
    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs) => inputs[0].Value.ShapeArray;

    /// <summary>y = f(x) element by element; <paramref name="x"/> and <paramref name="y"/> have the same length.</summary>
    protected abstract void Compute(ReadOnlySpan<T> x, Span<T> y);

    /// <summary>dx = dy ⊙ f′(x), written (not accumulated) into dx.</summary>
    protected abstract void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx);

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) => Compute(inputs[0].Value.Data, output.Data);

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        if (!inputs[0].RequiresGrad) return;
        var g = inputs[0].GradTarget(out bool acc);
        if (!acc)
        {
            Derivative(inputs[0].Value.Data, output.Value.Data, output.Grad.Data, g.Data);
            return;
        }
        _scratch ??= new Tensor<T>(g.ShapeArray);
        Derivative(inputs[0].Value.Data, output.Value.Data, output.Grad.Data, _scratch.Data);
        TensorPrimitives.Add(g.Data, _scratch.Data, g.Data);
    }
}

/// <summary>Y = −X.</summary>
public sealed class NegOp<T> : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "neg";
    /// <inheritdoc/>
    public override string Formula => "Y = −X";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dX = −dY"];
    /// <inheritdoc/>
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Negate(x, y);
    /// <inheritdoc/>
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Negate(dy, dx);
}

/// <summary>Y = X + c for a constant c.</summary>
/// <param name="c">The constant added.</param>
public sealed class AddScalarOp<T>(T c) : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "add_scalar";
    /// <inheritdoc/>
    public override string Formula => $"Y = X + {c}";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dX = dY"];
    /// <inheritdoc/>
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Add(x, c, y);
    /// <inheritdoc/>
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => dy.CopyTo(dx);
}

/// <summary>Y = c·X for a constant c.</summary>
/// <param name="c">The constant factor.</param>
public sealed class MulScalarOp<T>(T c) : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "mul_scalar";
    /// <inheritdoc/>
    public override string Formula => $"Y = {c}·X";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => [$"dX = {c}·dY"];
    /// <inheritdoc/>
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Multiply(x, c, y);
    /// <inheritdoc/>
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Multiply(dy, c, dx);
}

/// <summary>Y = X^p for a constant exponent p (<c>T.Pow</c>: a negative base with a non-integer p gives NaN).</summary>
/// <param name="p">The exponent.</param>
public sealed class PowScalarOp<T>(T p) : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "pow_scalar";
    /// <inheritdoc/>
    public override string Formula => $"Y = X^{p}";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => [$"dX = dY ⊙ {p}·X^({p}−1)"];
    /// <inheritdoc/>
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = T.Pow(x[i], p);
    }
    /// <inheritdoc/>
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx)
    {
        for (int i = 0; i < x.Length; i++) dx[i] = dy[i] * p * T.Pow(x[i], p - T.One);
    }
}

/// <summary>Y = e^X; the gradient reuses the output, dX = dY ⊙ Y.</summary>
public sealed class ExpOp<T> : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "exp";
    /// <inheritdoc/>
    public override string Formula => "Y = exp(X)";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dX = dY ⊙ Y"];
    /// <inheritdoc/>
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Exp(x, y);
    /// <inheritdoc/>
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Multiply(dy, y, dx);
}

/// <summary>Y = log X, the natural logarithm; dX = dY ⊘ X.</summary>
public sealed class LogOp<T> : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public override string Name => "log";
    /// <inheritdoc/>
    public override string Formula => "Y = log(X)";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => ["dX = dY ⊘ X"];
    /// <inheritdoc/>
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Log(x, y);
    /// <inheritdoc/>
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Divide(dy, x, dx);
}
