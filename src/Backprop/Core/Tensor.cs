using System.Numerics;
using System.Text;

namespace Backprop.Core;

/// <summary>
/// A dense, row-major, contiguous tensor of <typeparamref name="T"/> (float or double).
/// Its elements are <see cref="Length"/> consecutive values of an array, which reshaped views share, and which may be
/// a larger buffer holding many tensors: a model's gradients are views into one contiguous buffer (see
/// <see cref="View"/>), so a collective all-reduce or a fused optimizer sees them as one span.
/// </summary>
public sealed class Tensor<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int[] _shape;
    private readonly T[] _array;
    private readonly int _offset;
    private readonly int _length;

    public Tensor(params int[] shape) : this(new T[ShapeUtil.Product(shape)], shape) { }

    public Tensor(T[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        foreach (var d in shape)
            if (d < 0) throw new ArgumentException($"shape {ShapeUtil.Format(shape)} has a negative dimension");
        long n = ShapeUtil.Product(shape);
        if (n != data.Length)
            throw new ArgumentException($"shape {ShapeUtil.Format(shape)} holds {n} elements but the data has {data.Length}");
        _array = data;
        _length = (int)n;
        _shape = (int[])shape.Clone();
    }

    private Tensor(T[] array, int offset, int[] shape)
    {
        _array = array;
        _offset = offset;
        _length = ShapeUtil.Product(shape);
        _shape = shape;
    }

    /// <summary>
    /// A tensor over <paramref name="buffer"/>[<paramref name="offset"/> …] with the given shape: writes to either are
    /// seen by both.
    /// </summary>
    public static Tensor<T> View(T[] buffer, int offset, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        foreach (var d in shape)
            if (d < 0) throw new ArgumentException($"shape {ShapeUtil.Format(shape)} has a negative dimension");
        int n = ShapeUtil.Product(shape);
        if (offset < 0 || (long)offset + n > buffer.Length)
            throw new ArgumentException($"a {ShapeUtil.Format(shape)} view at offset {offset} does not fit in a buffer of {buffer.Length}");
        return new Tensor<T>(buffer, offset, (int[])shape.Clone());
    }

    /// <summary>The elements in row-major order.</summary>
    public Span<T> Data => new(_array, _offset, _length);
    /// <summary>The same as <see cref="Data"/>.</summary>
    public Span<T> Span => Data;
    public Memory<T> Memory => new(_array, _offset, _length);
    /// <summary>The elements as an array segment, for code that indexes them from a lambda.</summary>
    public ArraySegment<T> Segment => new(_array, _offset, _length);
    /// <summary>Whether this tensor's elements are a part of a larger buffer (see <see cref="View"/>).</summary>
    public bool IsView => _offset != 0 || _length != _array.Length;
    public ReadOnlySpan<int> Shape => _shape;
    public int[] ShapeArray => (int[])_shape.Clone();
    public int Rank => _shape.Length;
    public int Length => _length;

    /// <summary>Rows of a matrix (rank 2), or 1 for a vector.</summary>
    public int Rows => _shape.Length switch { 0 => 1, 1 => 1, _ => _shape[0] };
    /// <summary>Columns of a matrix (rank 2), the length of a vector.</summary>
    public int Cols => _shape.Length switch { 0 => 1, 1 => _shape[0], _ => Length / Math.Max(1, _shape[0]) };

    public int Dim(int axis) => _shape[axis < 0 ? axis + _shape.Length : axis];

    public string ShapeString => ShapeUtil.Format(_shape);

    public T this[int i]
    {
        get => Data[i];
        set => Data[i] = value;
    }

    public T this[int row, int col]
    {
        get
        {
            if (_shape.Length != 2) throw new InvalidOperationException($"2-index access needs a matrix, not {ShapeString}");
            return Data[row * _shape[1] + col];
        }
        set
        {
            if (_shape.Length != 2) throw new InvalidOperationException($"2-index access needs a matrix, not {ShapeString}");
            Data[row * _shape[1] + col] = value;
        }
    }

    public Span<T> Row(int r)
    {
        int c = Cols;
        return Data.Slice(r * c, c);
    }

    public static Tensor<T> Zeros(params int[] shape) => new(shape);

    public static Tensor<T> Ones(params int[] shape) => Full(T.One, shape);

    public static Tensor<T> Full(T value, params int[] shape)
    {
        var t = new Tensor<T>(shape);
        t.Data.Fill(value);
        return t;
    }

    public static Tensor<T> Scalar(T value) => new([value]);

    public static Tensor<T> FromArray(T[,] values)
    {
        int r = values.GetLength(0), c = values.GetLength(1);
        var t = new Tensor<T>(r, c);
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++)
                t.Data[i * c + j] = values[i, j];
        return t;
    }

    public static Tensor<T> FromRows(IReadOnlyList<IReadOnlyList<double>> rows)
    {
        int r = rows.Count;
        int c = r == 0 ? 0 : rows[0].Count;
        var t = new Tensor<T>(r, c);
        for (int i = 0; i < r; i++)
        {
            if (rows[i].Count != c)
                throw new ArgumentException($"row {i} has {rows[i].Count} values but row 0 has {c}");
            for (int j = 0; j < c; j++) t.Data[i * c + j] = T.CreateChecked(rows[i][j]);
        }
        return t;
    }

    public static Tensor<T> FromVector(IReadOnlyList<double> values)
    {
        var t = new Tensor<T>(values.Count);
        for (int i = 0; i < values.Count; i++) t.Data[i] = T.CreateChecked(values[i]);
        return t;
    }

    /// <summary>Uniform random values in [lo, hi), from a seeded generator.</summary>
    public static Tensor<T> Random(Random rng, double lo, double hi, params int[] shape)
    {
        var t = new Tensor<T>(shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] = T.CreateChecked(lo + (hi - lo) * rng.NextDouble());
        return t;
    }

    /// <summary>A view with another shape over the same data.</summary>
    public Tensor<T> Reshape(params int[] shape)
    {
        if (ShapeUtil.Product(shape) != _length)
            throw new ArgumentException($"shape {ShapeUtil.Format(shape)} holds {ShapeUtil.Product(shape)} elements but the tensor has {_length}");
        return new(_array, _offset, (int[])shape.Clone());
    }

    public Tensor<T> Clone() => new(Data.ToArray(), _shape);

    public void CopyFrom(Tensor<T> other)
    {
        ShapeUtil.RequireSameShape(this, other, "copy");
        other.Data.CopyTo(Data);
    }

    public void Fill(T value) => Data.Fill(value);

    public bool SameShape(Tensor<T> other) => _shape.AsSpan().SequenceEqual(other._shape);

    public bool SameShape(ReadOnlySpan<int> shape) => _shape.AsSpan().SequenceEqual(shape);

    public Tensor<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut>
    {
        var t = new Tensor<TOut>(_shape);
        for (int i = 0; i < Length; i++) t.Data[i] = TOut.CreateTruncating(Data[i]);
        return t;
    }

    public double[] ToDoubleArray()
    {
        var a = new double[Length];
        for (int i = 0; i < Length; i++) a[i] = double.CreateTruncating(Data[i]);
        return a;
    }

    /// <summary>Rows as nested double arrays (a vector becomes one row).</summary>
    public double[][] ToJagged()
    {
        int r = Rows, c = Cols;
        var rows = new double[r][];
        for (int i = 0; i < r; i++)
        {
            rows[i] = new double[c];
            for (int j = 0; j < c; j++) rows[i][j] = double.CreateTruncating(Data[i * c + j]);
        }
        return rows;
    }

    public double FrobeniusNorm()
    {
        double s = 0;
        foreach (var v in Data) { double d = double.CreateTruncating(v); s += d * d; }
        return Math.Sqrt(s);
    }

    /// <summary>The shape, then the values as PyTorch prints them (see <see cref="TensorFormat"/>).</summary>
    public override string ToString() => TensorFormat.Format(this);
}

public static class ShapeUtil
{
    public static int Product(ReadOnlySpan<int> shape)
    {
        long p = 1;
        foreach (var d in shape)
        {
            p *= d;
            if (p > int.MaxValue) throw new ArgumentException($"shape {Format(shape)} has more than {int.MaxValue} elements");
        }
        return (int)p;
    }

    /// <summary>Formats a shape as "[2×3]" (a scalar as "[]").</summary>
    public static string Format(ReadOnlySpan<int> shape)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) sb.Append('×');
            sb.Append(shape[i]);
        }
        return sb.Append(']').ToString();
    }

    public static void RequireSameShape<T>(Tensor<T> a, Tensor<T> b, string op)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!a.SameShape(b.Shape))
            throw new ShapeMismatchException($"{op}: shapes {a.ShapeString} and {b.ShapeString} differ");
    }
}

/// <summary>Thrown when operand shapes do not fit an operation; the message names the shapes.</summary>
public sealed class ShapeMismatchException(string message) : ArgumentException(message);
