using System.Globalization;
using System.Numerics;
using System.Text;

namespace Backprop.Core;

/// <summary>
/// How a tensor prints: its shape, then its values nested by dimension as PyTorch prints them. Every value of a tensor
/// shares one format (4 decimals; whole numbers as "1."; scientific when the magnitudes span more than 1000× or leave
/// [1e-4, 1e8)) and one width, so columns line up. A tensor of more than 1000 values shows the first and last 3 entries
/// of each dimension, with … between.
/// </summary>
public static class TensorFormat
{
    /// <summary>More values than this and long dimensions are summarised (PyTorch's default threshold).</summary>
    public const int SummaryThreshold = 1000;

    /// <summary>Entries kept at each end of a summarised dimension (PyTorch's edgeitems).</summary>
    public const int EdgeItems = 3;

    /// <summary>
    /// The tensor as text: "Tensor", the shape, a new line and the values nested as PyTorch prints them, for example
    /// <c>Tensor[3]\n[1., 2., 3.]</c>; a scalar stays on one line (<c>Tensor[] 3.1416</c>).
    /// </summary>
    public static string Format<T>(Tensor<T> t) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var shape = t.Shape.ToArray();
        bool summarise = t.Length > SummaryThreshold;
        // The values that show decide the format.
        var shown = new List<double>();
        Visit(shape, summarise, 0, 0, i => shown.Add(double.CreateTruncating(t.Data[i])));
        var number = NumberFormat(shown);
        int width = shown.Count == 0 ? 0 : shown.Max(v => number(v).Length);

        var sb = new StringBuilder("Tensor").Append(t.ShapeString);
        if (shape.Length == 0) return sb.Append(' ').Append(number(double.CreateTruncating(t.Data[0]))).ToString();
        sb.Append('\n');
        Write(sb, t, shape, summarise, 0, 0, number, width, indent: 0);
        return sb.ToString();
    }

    /// <summary>Calls <paramref name="visit"/> with the flat index of every value that shows, in order.</summary>
    private static void Visit(int[] shape, bool summarise, int dim, int offset, Action<int> visit)
    {
        if (shape.Length == 0) { visit(0); return; }
        int stride = 1;
        for (int d = dim + 1; d < shape.Length; d++) stride *= shape[d];
        foreach (int i in Indices(shape[dim], summarise))
        {
            if (i < 0) continue;
            if (dim == shape.Length - 1) visit(offset + i);
            else Visit(shape, summarise, dim + 1, offset + i * stride, visit);
        }
    }

    /// <summary>The indices of a dimension that show; -1 stands for the … of a summarised one.</summary>
    private static IEnumerable<int> Indices(int size, bool summarise)
    {
        if (!summarise || size <= 2 * EdgeItems)
        {
            for (int i = 0; i < size; i++) yield return i;
            yield break;
        }
        for (int i = 0; i < EdgeItems; i++) yield return i;
        yield return -1;
        for (int i = size - EdgeItems; i < size; i++) yield return i;
    }

    private static void Write<T>(StringBuilder sb, Tensor<T> t, int[] shape, bool summarise, int dim, int offset,
        Func<double, string> number, int width, int indent) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var values = t.Data;
        sb.Append('[');
        int stride = 1;
        for (int d = dim + 1; d < shape.Length; d++) stride *= shape[d];
        bool first = true;
        foreach (int i in Indices(shape[dim], summarise))
        {
            if (!first)
            {
                sb.Append(',');
                if (dim == shape.Length - 1) sb.Append(' ');
                else sb.Append('\n', shape.Length - 1 - dim).Append(' ', indent + 1);
            }
            first = false;
            if (i < 0) sb.Append('…');
            else if (dim == shape.Length - 1) sb.Append(number(double.CreateTruncating(values[offset + i])).PadLeft(width));
            else Write(sb, t, shape, summarise, dim + 1, offset + i * stride, number, width, indent + 1);
        }
        sb.Append(']');
    }

    private static Func<double, string> NumberFormat(IReadOnlyList<double> values)
    {
        var finite = values.Where(double.IsFinite).Select(Math.Abs).Where(v => v != 0).ToArray();
        bool whole = values.Where(double.IsFinite).All(v => v == Math.Round(v) && Math.Abs(v) < 1e16);
        if (whole && finite.Length > 0 && finite.Max() < 1e8) return v => double.IsFinite(v) ? v.ToString("0", CultureInfo.InvariantCulture) + "." : Special(v);
        if (finite.Length > 0 && (finite.Max() / finite.Min() > 1000 || finite.Max() >= 1e8 || finite.Min() < 1e-4))
            return v => double.IsFinite(v) ? v.ToString("0.0000e+00", CultureInfo.InvariantCulture) : Special(v);
        return v => double.IsFinite(v) ? v.ToString("0.0000", CultureInfo.InvariantCulture) : Special(v);
    }

    private static string Special(double v) => double.IsNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
}
