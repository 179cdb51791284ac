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

    /// <summary>A new tensor of the given shape, all zeros. No dimensions makes a scalar (one element).</summary>
    /// <exception cref="ArgumentException">A dimension is negative, or the shape has more than <see cref="int.MaxValue"/> elements.</exception>
    public Tensor(params int[] shape) : this(new T[ShapeUtil.Product(shape)], shape) { }

    /// <summary>
    /// A tensor over <paramref name="data"/> (row-major) with the given shape. The array is not copied: writes through the
    /// tensor change it and the other way round.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="data"/> or <paramref name="shape"/> is null.</exception>
    /// <exception cref="ArgumentException">A dimension is negative, or the shape does not hold exactly <c>data.Length</c> elements.</exception>
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
    /// <summary>The elements in row-major order, as memory that can be kept beyond the call (for asynchronous or parallel code).</summary>
    public Memory<T> Memory => new(_array, _offset, _length);
    /// <summary>The elements as an array segment, for code that indexes them from a lambda.</summary>
    public ArraySegment<T> Segment => new(_array, _offset, _length);
    /// <summary>Whether this tensor's elements are a part of a larger buffer (see <see cref="View"/>).</summary>
    public bool IsView => _offset != 0 || _length != _array.Length;
    /// <summary>The size of each dimension, outermost first; empty for a scalar.</summary>
    public ReadOnlySpan<int> Shape => _shape;
    /// <summary>A copy of <see cref="Shape"/> as a new array, which the caller may keep or change.</summary>
    public int[] ShapeArray => (int[])_shape.Clone();
    /// <summary>The number of dimensions: 0 for a scalar, 1 for a vector, 2 for a matrix.</summary>
    public int Rank => _shape.Length;
    /// <summary>The number of elements, the product of the dimensions (1 for a scalar).</summary>
    public int Length => _length;

    /// <summary>Rows of a matrix (rank 2), or 1 for a vector.</summary>
    public int Rows => _shape.Length switch { 0 => 1, 1 => 1, _ => _shape[0] };
    /// <summary>Columns of a matrix (rank 2), the length of a vector.</summary>
    public int Cols => _shape.Length switch { 0 => 1, 1 => _shape[0], _ => Length / Math.Max(1, _shape[0]) };

    /// <summary>The size of dimension <paramref name="axis"/>; a negative axis counts from the end (-1 is the last), as in NumPy.</summary>
    /// <exception cref="IndexOutOfRangeException">The axis is not in [-<see cref="Rank"/>, <see cref="Rank"/>).</exception>
    public int Dim(int axis) => _shape[axis < 0 ? axis + _shape.Length : axis];

    /// <summary>The shape as text, "[2×3]" (a scalar "[]"), as error messages write it.</summary>
    public string ShapeString => ShapeUtil.Format(_shape);

    /// <summary>The element at flat row-major index <paramref name="i"/>, whatever the rank.</summary>
    public T this[int i]
    {
        get => Data[i];
        set => Data[i] = value;
    }

    /// <summary>The element at (<paramref name="row"/>, <paramref name="col"/>) of a matrix.</summary>
    /// <exception cref="InvalidOperationException">The tensor is not of rank 2.</exception>
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

    /// <summary>Row <paramref name="r"/> (<see cref="Cols"/> elements) as a span over the tensor's own data; a vector has one row.</summary>
    public Span<T> Row(int r)
    {
        int c = Cols;
        return Data.Slice(r * c, c);
    }

    /// <summary>A new tensor of the given shape filled with 0.</summary>
    public static Tensor<T> Zeros(params int[] shape) => new(shape);

    /// <summary>A new tensor of the given shape filled with 1.</summary>
    public static Tensor<T> Ones(params int[] shape) => Full(T.One, shape);

    /// <summary>A new tensor of the given shape with every element <paramref name="value"/>.</summary>
    public static Tensor<T> Full(T value, params int[] shape)
    {
        var t = new Tensor<T>(shape);
        t.Data.Fill(value);
        return t;
    }

    /// <summary>A new scalar: rank 0, shape [], one element.</summary>
    public static Tensor<T> Scalar(T value) => new([value]);

    /// <summary>A new rows × columns matrix with a copy of a two-dimensional array's values.</summary>
    public static Tensor<T> FromArray(T[,] values)
    {
        int r = values.GetLength(0), c = values.GetLength(1);
        var t = new Tensor<T>(r, c);
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++)
                t.Data[i * c + j] = values[i, j];
        return t;
    }

    /// <summary>
    /// A new matrix from rows of doubles (as JSON and CSV readers produce them), each converted to <typeparamref name="T"/>;
    /// no rows makes a 0×0 matrix.
    /// </summary>
    /// <exception cref="ArgumentException">The rows do not all have the length of row 0.</exception>
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

    /// <summary>A new vector (rank 1) of the values, each converted to <typeparamref name="T"/>.</summary>
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

    /// <summary>A copy with its own array: the same shape and values, never a view.</summary>
    public Tensor<T> Clone() => new(Data.ToArray(), _shape);

    /// <summary>Overwrites this tensor's elements with <paramref name="other"/>'s; views see the change.</summary>
    /// <exception cref="ShapeMismatchException">The shapes differ.</exception>
    public void CopyFrom(Tensor<T> other)
    {
        ShapeUtil.RequireSameShape(this, other, "copy");
        other.Data.CopyTo(Data);
    }

    /// <summary>Sets every element to <paramref name="value"/>.</summary>
    public void Fill(T value) => Data.Fill(value);

    /// <summary>Whether <paramref name="other"/> has exactly this shape (a [6] vector and a [2×3] matrix differ).</summary>
    public bool SameShape(Tensor<T> other) => _shape.AsSpan().SequenceEqual(other._shape);

    /// <summary>Whether this tensor has exactly the given shape.</summary>
    public bool SameShape(ReadOnlySpan<int> shape) => _shape.AsSpan().SequenceEqual(shape);

    /// <summary>A copy converted element by element to <typeparamref name="TOut"/>; double to float rounds to nearest.</summary>
    public Tensor<TOut> Cast<TOut>() where TOut : unmanaged, IFloatingPointIeee754<TOut>
    {
        var t = new Tensor<TOut>(_shape);
        for (int i = 0; i < Length; i++) t.Data[i] = TOut.CreateTruncating(Data[i]);
        return t;
    }

    /// <summary>A copy of the elements as doubles, in row-major order.</summary>
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

    /// <summary>√(Σ x²) over all elements, summed in double whatever <typeparamref name="T"/> is.</summary>
    public double FrobeniusNorm()
    {
        double s = 0;
        foreach (var v in Data) { double d = double.CreateTruncating(v); s += d * d; }
        return Math.Sqrt(s);
    }

    /// <summary>The shape, then the values as PyTorch prints them (see <see cref="TensorFormat"/>).</summary>
    public override string ToString() => TensorFormat.Format(this);
}

/// <summary>Shape arithmetic and checks shared by tensors and operations.</summary>
public static class ShapeUtil
{
    /// <summary>The number of elements a shape holds (1 for the empty shape of a scalar).</summary>
    /// <exception cref="ArgumentException">A dimension is negative, or the product exceeds <see cref="int.MaxValue"/>.</exception>
    public static int Product(ReadOnlySpan<int> shape)
    {
        long p = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"shape {Format(shape)} has a negative dimension");
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

    /// <summary>Throws unless <paramref name="a"/> and <paramref name="b"/> have the same shape.</summary>
    /// <param name="a">The first operand.</param>
    /// <param name="b">The second operand.</param>
    /// <param name="op">The operation's name, which starts the message ("add: shapes [2×3] and [3×2] differ").</param>
    /// <exception cref="ShapeMismatchException">The shapes differ.</exception>
    public static void RequireSameShape<T>(Tensor<T> a, Tensor<T> b, string op)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!a.SameShape(b.Shape))
            throw new ShapeMismatchException($"{op}: shapes {a.ShapeString} and {b.ShapeString} differ");
    }
}

/// <summary>Thrown when operand shapes do not fit an operation; the message names the shapes.</summary>
public sealed class ShapeMismatchException(string message) : ArgumentException(message);
