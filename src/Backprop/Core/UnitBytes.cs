using System.Numerics;
using System.Runtime.InteropServices;
using System.Numerics.Tensors;

namespace Backprop.Core;

/// <summary>
/// Features stored as bytes that stand for byte / 255 (an image's pixels, as MNIST's IDX files hold them): a quarter of
/// the memory of floats. The one place that says what such a byte means as a number.
/// </summary>
public static class UnitBytes
{
    /// <summary>
    /// destination[i] = (source[i] / 255f) as T. The float is the correctly rounded quotient, as <c>i / 255f</c> gives
    /// it, so data stored as bytes trains bit for bit as the same data stored as floats.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <paramref name="source"/>.</exception>
    public static void Convert<T>(ReadOnlySpan<byte> source, Span<T> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"the destination holds {destination.Length} values, the source {source.Length}", nameof(destination));
        if (typeof(T) == typeof(float))
        {
            var f = MemoryMarshal.Cast<T, float>(destination)[..source.Length];
            TensorPrimitives.ConvertChecked<byte, float>(source, f);
            TensorPrimitives.Divide(f, 255f, f);
            return;
        }
        for (int j = 0; j < source.Length; j++) destination[j] = T.CreateTruncating(source[j] / 255f);
    }
}
