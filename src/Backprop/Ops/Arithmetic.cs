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

    public override IReadOnlyList<string> InputNames => ["A", "B"];

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

    public delegate void TensorPrimitivesBinary(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> destination);
}

public sealed class AddOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "add";
    public override string Formula => "Y = A + B";
    public override IReadOnlyList<string> GradFormulas => ["dA = dY (summed over broadcast axes)", "dB = dY (summed over broadcast axes)"];

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Add, static (x, y) => x + y);

    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var dy = output.Grad;
        for (int i = 0; i < 2; i++)
            if (inputs[i].RequiresGrad)
                Broadcast.SumTo(dy, inputs[i].GradTarget(out bool acc), acc, T.One);
    }
}

public sealed class SubOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "sub";
    public override string Formula => "Y = A − B";
    public override IReadOnlyList<string> GradFormulas => ["dA = dY (summed over broadcast axes)", "dB = −dY (summed over broadcast axes)"];

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Subtract, static (x, y) => x - y);

    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var dy = output.Grad;
        if (inputs[0].RequiresGrad) Broadcast.SumTo(dy, inputs[0].GradTarget(out bool a0), a0, T.One);
        if (inputs[1].RequiresGrad) Broadcast.SumTo(dy, inputs[1].GradTarget(out bool a1), a1, -T.One);
    }
}

public sealed class MulOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "mul";
    public override string Formula => "Y = A ⊙ B";
    public override IReadOnlyList<string> GradFormulas => ["dA = dY ⊙ B", "dB = dY ⊙ A"];

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Multiply, static (x, y) => x * y);

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

public sealed class DivOp<T> : BroadcastBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "div";
    public override string Formula => "Y = A ⊘ B";
    public override IReadOnlyList<string> GradFormulas => ["dA = dY ⊘ B", "dB = −dY ⊙ A ⊘ B²"];

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) =>
        Apply(inputs[0].Value, inputs[1].Value, output, TensorPrimitives.Divide, static (x, y) => x / y);

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
    public override IReadOnlyList<string> InputNames => ["X"];
    public override int[] OutputShape(Var<T>[] inputs) => inputs[0].Value.ShapeArray;

    protected abstract void Compute(ReadOnlySpan<T> x, Span<T> y);

    /// <summary>dx = dy ⊙ f′(x), written (not accumulated) into dx.</summary>
    protected abstract void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx);

    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output) => Compute(inputs[0].Value.Data, output.Data);

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

public sealed class NegOp<T> : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "neg";
    public override string Formula => "Y = −X";
    public override IReadOnlyList<string> GradFormulas => ["dX = −dY"];
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Negate(x, y);
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Negate(dy, dx);
}

public sealed class AddScalarOp<T>(T c) : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "add_scalar";
    public override string Formula => $"Y = X + {c}";
    public override IReadOnlyList<string> GradFormulas => ["dX = dY"];
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Add(x, c, y);
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => dy.CopyTo(dx);
}

public sealed class MulScalarOp<T>(T c) : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "mul_scalar";
    public override string Formula => $"Y = {c}·X";
    public override IReadOnlyList<string> GradFormulas => [$"dX = {c}·dY"];
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Multiply(x, c, y);
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Multiply(dy, c, dx);
}

public sealed class PowScalarOp<T>(T p) : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "pow_scalar";
    public override string Formula => $"Y = X^{p}";
    public override IReadOnlyList<string> GradFormulas => [$"dX = dY ⊙ {p}·X^({p}−1)"];
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = T.Pow(x[i], p);
    }
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx)
    {
        for (int i = 0; i < x.Length; i++) dx[i] = dy[i] * p * T.Pow(x[i], p - T.One);
    }
}

public sealed class ExpOp<T> : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "exp";
    public override string Formula => "Y = exp(X)";
    public override IReadOnlyList<string> GradFormulas => ["dX = dY ⊙ Y"];
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Exp(x, y);
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Multiply(dy, y, dx);
}

public sealed class LogOp<T> : ElementwiseOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Name => "log";
    public override string Formula => "Y = log(X)";
    public override IReadOnlyList<string> GradFormulas => ["dX = dY ⊘ X"];
    protected override void Compute(ReadOnlySpan<T> x, Span<T> y) => TensorPrimitives.Log(x, y);
    protected override void Derivative(ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) => TensorPrimitives.Divide(dy, x, dx);
}
