using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Kernels;

namespace Backprop.Ops;

/// <summary>Sum (or mean) over every element, or along one axis.</summary>
public sealed class SumOp<T> : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int? _axis;
    private readonly bool _keepDim;
    private readonly bool _mean;

    /// <summary>A sum (or mean) over every element, giving a scalar, or along one axis.</summary>
    /// <param name="axis">The axis to reduce (negative counts from the end); null for every element.</param>
    /// <param name="keepDim">Keep the reduced axis (or, for a full reduction, every axis) with size 1, as PyTorch's keepdim.</param>
    /// <param name="mean">Divide by the number of elements reduced.</param>
    public SumOp(int? axis = null, bool keepDim = false, bool mean = false)
    {
        _axis = axis; _keepDim = keepDim; _mean = mean;
    }

    /// <inheritdoc/>
    public override string Name => _mean ? "mean" : "sum";
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["X"];

    /// <inheritdoc/>
    public override string Formula => (_mean, _axis) switch
    {
        (false, null) => "y = Σ X",
        (true, null) => "y = (1/N)·Σ X",
        (false, _) => $"Y = Σ_axis{_axis} X",
        _ => $"Y = (1/N)·Σ_axis{_axis} X",
    };

    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas =>
        [_mean ? "dX = dY/N broadcast over the reduced axis" : "dX = dY broadcast over the reduced axis"];

    private int Axis(Tensor<T> x)
    {
        int a = _axis!.Value;
        if (a < 0) a += x.Rank;
        if (a < 0 || a >= x.Rank) throw new ShapeMismatchException($"{Name}: axis {_axis} is out of range for {x.ShapeString}");
        return a;
    }

    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs)
    {
        var x = inputs[0].Value;
        if (_axis is null) return _keepDim ? Enumerable.Repeat(1, x.Rank).ToArray() : [];
        int a = Axis(x);
        var s = x.ShapeArray.ToList();
        if (_keepDim) s[a] = 1; else s.RemoveAt(a);
        return s.ToArray();
    }

    // The reduced axis splits the data into outer × axis × inner blocks.
    private (int outer, int len, int inner) Blocks(Tensor<T> x)
    {
        int a = Axis(x);
        int outer = 1, inner = 1;
        for (int i = 0; i < a; i++) outer *= x.Dim(i);
        for (int i = a + 1; i < x.Rank; i++) inner *= x.Dim(i);
        return (outer, x.Dim(a), inner);
    }

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var x = inputs[0].Value;
        if (_axis is null)
        {
            T s = TensorPrimitives.Sum<T>(x.Data);
            output.Data[0] = _mean ? s / T.CreateChecked(Math.Max(1, x.Length)) : s;
            return;
        }
        var (outer, len, inner) = Blocks(x);
        var o = output.Data;
        o.Clear();
        for (int i = 0; i < outer; i++)
            for (int j = 0; j < len; j++)
            {
                var dst = o.Slice(i * inner, inner);
                TensorPrimitives.Add(dst, x.Data.Slice((i * len + j) * inner, inner), dst);
            }
        if (_mean) TensorPrimitives.Multiply(o, T.One / T.CreateChecked(len), o);
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var X = inputs[0];
        if (!X.RequiresGrad) return;
        var dx = X.GradTarget(out bool acc);
        var dy = output.Grad.Data;
        if (_axis is null)
        {
            T g = _mean ? dy[0] / T.CreateChecked(Math.Max(1, dx.Length)) : dy[0];
            if (acc) TensorPrimitives.Add(dx.Data, g, dx.Data); else dx.Fill(g);
            return;
        }
        var (outer, len, inner) = Blocks(X.Value);
        T scale = _mean ? T.One / T.CreateChecked(len) : T.One;
        for (int i = 0; i < outer; i++)
            for (int j = 0; j < len; j++)
            {
                var src = dy.Slice(i * inner, inner);
                var dst = dx.Data.Slice((i * len + j) * inner, inner);
                if (acc) TensorPrimitives.MultiplyAdd(src, scale, dst, dst);
                else TensorPrimitives.Multiply(src, scale, dst);
            }
    }
}

/// <summary>Row-wise (last-axis) softmax or log-softmax, computed stably by subtracting the row maximum.</summary>
public sealed class SoftmaxOp<T>(bool log) : Op<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Whether the op computes log-softmax (the stable X − log Σ exp X) rather than softmax.</summary>
    public bool Log { get; } = log;
    /// <inheritdoc/>
    public override string Name => Log ? "log_softmax" : "softmax";
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["X"];
    /// <inheritdoc/>
    public override string Formula => Log ? "Y = X − log Σ_row exp(X)" : "Y = exp(X) / Σ_row exp(X)";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => Log
        ? ["dX = dY − softmax(X) ⊙ Σ_row dY"]
        : ["dX = Y ⊙ (dY − Σ_row(dY ⊙ Y))"];

    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs)
    {
        var x = inputs[0].Value;
        if (x.Rank == 0) throw new ShapeMismatchException($"{Name} needs at least one axis, got {x.ShapeString}");
        return x.ShapeArray;
    }

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var x = inputs[0].Value;
        int c = x.Dim(-1);
        for (int r = 0; r < x.Length; r += c)
            SoftmaxRow(x.Data.Slice(r, c), output.Data.Slice(r, c), Log);
    }

    internal static void SoftmaxRow(ReadOnlySpan<T> x, Span<T> y, bool log)
    {
        T max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, y);
        if (log)
        {
            T lse = T.Zero;
            foreach (var v in y) lse += T.Exp(v);
            TensorPrimitives.Subtract(y, T.Log(lse), y);
        }
        else
        {
            TensorPrimitives.Exp(y, y);
            T s = TensorPrimitives.Sum<T>(y);
            TensorPrimitives.Divide(y, s, y);
        }
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        var X = inputs[0];
        if (!X.RequiresGrad) return;
        var dx = X.GradTarget(out bool acc);
        var y = output.Value.Data; var dy = output.Grad.Data;
        int c = X.Value.Dim(-1);
        for (int r = 0; r < y.Length; r += c)
        {
            var yr = y.Slice(r, c); var dyr = dy.Slice(r, c); var dxr = dx.Data.Slice(r, c);
            if (Log)
            {
                T s = TensorPrimitives.Sum<T>(dyr);
                for (int j = 0; j < c; j++)
                {
                    T g = dyr[j] - T.Exp(yr[j]) * s;
                    dxr[j] = acc ? dxr[j] + g : g;
                }
            }
            else
            {
                T s = TensorPrimitives.Dot<T>(dyr, yr);
                for (int j = 0; j < c; j++)
                {
                    T g = yr[j] * (dyr[j] - s);
                    dxr[j] = acc ? dxr[j] + g : g;
                }
            }
        }
    }
}
