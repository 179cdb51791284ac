using System.Numerics;
using Backprop.Core;

namespace Backprop.Ops;

/// <summary>NumPy broadcasting: shapes align from the right; a dimension of 1 (or a missing one) stretches.</summary>
internal static class Broadcast
{
    public static int[] Shape(ReadOnlySpan<int> a, ReadOnlySpan<int> b, string op)
    {
        int r = Math.Max(a.Length, b.Length);
        var s = new int[r];
        for (int i = 0; i < r; i++)
        {
            int da = i < r - a.Length ? 1 : a[i - (r - a.Length)];
            int db = i < r - b.Length ? 1 : b[i - (r - b.Length)];
            if (da != db && da != 1 && db != 1)
                throw new ShapeMismatchException($"{op}: shapes {ShapeUtil.Format(a)} and {ShapeUtil.Format(b)} do not broadcast");
            s[i] = da == 1 ? db : da;
        }
        return s;
    }

    /// <summary>Strides of <paramref name="shape"/> seen through <paramref name="outShape"/> (0 along stretched axes).</summary>
    public static int[] Strides(ReadOnlySpan<int> shape, ReadOnlySpan<int> outShape)
    {
        int r = outShape.Length;
        var strides = new int[r];
        int stride = 1;
        for (int i = r - 1; i >= 0; i--)
        {
            int j = i - (r - shape.Length);
            int d = j >= 0 ? shape[j] : 1;
            strides[i] = d == 1 ? 0 : stride;
            stride *= d;
        }
        return strides;
    }

    /// <summary>How an operand of a broadcast maps onto the output, with fast cases recognised once.</summary>
    public enum Kind { Same, Scalar, RowVector, General }

    public static Kind Classify(ReadOnlySpan<int> shape, ReadOnlySpan<int> outShape)
    {
        if (shape.SequenceEqual(outShape)) return Kind.Same;
        if (ShapeUtil.Product(shape) == 1) return Kind.Scalar;
        // [n] or [1×n] (or [1×1×n]) stretched over the leading axes of [..×n]
        int last = outShape.Length == 0 ? 1 : outShape[^1];
        if (shape.Length >= 1 && shape[^1] == last && ShapeUtil.Product(shape) == last) return Kind.RowVector;
        return Kind.General;
    }

    /// <summary>Visits every output element with the linear offsets into a and b.</summary>
    public static void ForEach(ReadOnlySpan<int> outShape, int[] sa, int[] sb, Action<int, int, int> visit)
    {
        int r = outShape.Length;
        int n = ShapeUtil.Product(outShape);
        Span<int> idx = stackalloc int[Math.Max(r, 1)];
        idx.Clear();
        int oa = 0, ob = 0;
        for (int o = 0; o < n; o++)
        {
            visit(o, oa, ob);
            for (int d = r - 1; d >= 0; d--)
            {
                idx[d]++;
                oa += sa[d];
                ob += sb[d];
                if (idx[d] < outShape[d]) break;
                oa -= sa[d] * outShape[d];
                ob -= sb[d] * outShape[d];
                idx[d] = 0;
            }
        }
    }

    /// <summary>
    /// dst (the operand's shape) = or += the sum of src (the output's shape) over the axes along which the
    /// operand was stretched: the backward rule of broadcasting.
    /// </summary>
    public static void SumTo<T>(Tensor<T> src, Tensor<T> dst, bool accumulate, T scale)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var kind = Classify(dst.Shape, src.Shape);
        var s = src.Data;
        var d = dst.Data;
        switch (kind)
        {
            case Kind.Same:
                if (accumulate)
                {
                    if (scale == T.One) System.Numerics.Tensors.TensorPrimitives.Add(d, s, d);
                    else System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(s, scale, d, d);
                }
                else System.Numerics.Tensors.TensorPrimitives.Multiply(s, scale, d);
                return;
            case Kind.Scalar:
            {
                T sum = System.Numerics.Tensors.TensorPrimitives.Sum<T>(s) * scale;
                d[0] = accumulate ? d[0] + sum : sum;
                return;
            }
            case Kind.RowVector:
            {
                int n = d.Length;
                if (!accumulate) d.Clear();
                var dspan = d;
                if (scale == T.One)
                    for (int r = 0; r < s.Length; r += n) System.Numerics.Tensors.TensorPrimitives.Add(dspan, s.Slice(r, n), dspan);
                else
                    for (int r = 0; r < s.Length; r += n) System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(s.Slice(r, n), scale, dspan, dspan);
                return;
            }
            default:
            {
                if (!accumulate) d.Clear();
                var sd = Strides(dst.Shape, src.Shape);
                var dSeg = dst.Segment; var sSeg = src.Segment;
                var zero = new int[sd.Length];
                ForEach(src.Shape, sd, zero, (o, od, _) => dSeg[od] += sSeg[o] * scale);
                return;
            }
        }
    }
}
