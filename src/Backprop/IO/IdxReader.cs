using System.Buffers.Binary;
using Backprop.Core;

namespace Backprop.IO;

/// <summary>Images read from an IDX3 file: <see cref="Count"/> images of <see cref="Rows"/>×<see cref="Cols"/> pixels, scaled to [0, 1].</summary>
public sealed class IdxImages
{
    internal IdxImages(float[] pixels, int count, int rows, int cols)
    {
        Pixels = pixels;
        Count = count;
        Rows = rows;
        Cols = cols;
    }

    /// <summary>Row-major Count × (Rows·Cols) pixels, each byte / 255.</summary>
    public float[] Pixels { get; }
    /// <summary>The number of images, as in the header.</summary>
    public int Count { get; }
    /// <summary>The height of each image in pixels (28 for MNIST).</summary>
    public int Rows { get; }
    /// <summary>The width of each image in pixels (28 for MNIST).</summary>
    public int Cols { get; }
    /// <summary>Rows·Cols, the feature count of one flattened image.</summary>
    public int PixelsPerImage => Rows * Cols;

    /// <summary>Image <paramref name="i"/>'s pixels.</summary>
    public ReadOnlySpan<float> Image(int i) => Pixels.AsSpan(checked(i * PixelsPerImage), PixelsPerImage);

    /// <summary>The images as a Count × (Rows·Cols) tensor sharing <see cref="Pixels"/>.</summary>
    public Tensor<float> ToTensor() => new(Pixels, Count, PixelsPerImage);
}

/// <summary>
/// Reads the IDX format of MNIST: a big-endian header (magic 0x00000803 for images, 0x00000801 for labels,
/// the count, and for images the rows and columns) followed by one unsigned byte per pixel or label.
/// Gzipped files are detected by their magic bytes (1f 8b), not their name. The file length must match the header exactly.
/// </summary>
public static class IdxReader
{
    /// <summary>The big-endian magic number of an image file: unsigned-byte data (0x08), three dimensions (0x03).</summary>
    public const int ImagesMagic = 0x00000803;
    /// <summary>The big-endian magic number of a label file: unsigned-byte data (0x08), one dimension (0x01).</summary>
    public const int LabelsMagic = 0x00000801;

    private static readonly System.Collections.Immutable.ImmutableArray<float> ByteToUnit = [.. BuildTable()];

    private static float[] BuildTable()
    {
        var t = new float[256];
        for (int i = 0; i < 256; i++) t[i] = i / 255f;
        return t;
    }

    /// <summary>Reads an IDX3 image file (raw or gzipped); pixels become byte/255.</summary>
    public static IdxImages ReadImages(string path) => ParseImages(DataInput.ReadMaybeGzip(path), path);

    /// <summary>
    /// Reads an IDX3 image file (raw or gzipped) as <see cref="ReadImages(string)"/> does, straight into the parts that
    /// <paramref name="partsOf"/> chooses once the header gives the image count: part k holds the images at the file rows
    /// <c>partsOf(count)[k]</c> lists, in that order. The file streams through a buffer of a few rows, so neither the
    /// decompressed file nor a whole copy of the images is held: reading the MNIST training set and splitting off a
    /// validation set wrote 420 MB of fresh memory before (the decompressed file, the images, the split copies), now 190 MB,
    /// and on this project's VM fresh memory costs more than decoding it (1.3–6.7 µs a 4 KiB page, from the host).
    /// A damaged file gives the message <see cref="ReadImages(string)"/> gives.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="partsOf">From the image count, the rows of each part (each row in at most one part, each index in 0 … count − 1).</param>
    /// <exception cref="DataFormatException">The file is missing, unreadable or not a valid IDX3 image file.</exception>
    /// <exception cref="ArgumentException"><paramref name="partsOf"/> gave a row outside the file, or one row twice.</exception>
    public static IdxImages[] ReadImages(string path, Func<int, int[][]> partsOf)
    {
        var (parts, rows, cols) = ReadImageBytes(path, partsOf);
        return [.. parts.Select(bytes =>
        {
            var pixels = Backprop.Core.LargeArrays.Uninitialized<float>(bytes.Length);   // every pixel is written below
            Backprop.Core.UnitBytes.Convert<float>(bytes, pixels);   // byte / 255f, as the whole-file reader's table holds
            return new IdxImages(pixels, bytes.Length / (rows * cols), rows, cols);
        })];
    }

    /// <summary>
    /// <see cref="ReadImages(string, Func{int, int[][]})"/> with the pixels left as the file's bytes (pixel = byte / 255):
    /// a quarter of the memory, for data sets that keep them so (<see cref="Data.LabeledData"/>).
    /// </summary>
    internal static (byte[][] Parts, int Rows, int Cols) ReadImageBytes(string path, Func<int, int[][]> partsOf)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(partsOf);
        if (TryStreamImages(path, partsOf) is { } streamed) return streamed;
        // not a well-formed file (or one this reader leaves to the whole-file reader): that reader says what is wrong
        var data = DataInput.ReadMaybeGzip(path);
        var all = ParseImages(data, path);
        var parts = partsOf(all.Count);
        _ = Destinations(parts, all.Count);   // the same checks as the streamed path
        int d = all.PixelsPerImage;
        return ([.. parts.Select(rowsOfPart =>
        {
            var bytes = new byte[(long)rowsOfPart.Length * d];
            for (int k = 0; k < rowsOfPart.Length; k++) data.AsSpan(16 + rowsOfPart[k] * d, d).CopyTo(bytes.AsSpan(k * d, d));
            return bytes;
        })], all.Rows, all.Cols);
    }

    /// <summary>For each file row, its part (−1: none) and its index there.</summary>
    private static (int[] Part, int[] Index) Destinations(int[][] parts, int count)
    {
        var part = new int[count];
        var index = new int[count];
        Array.Fill(part, -1);
        for (int k = 0; k < parts.Length; k++)
            for (int j = 0; j < parts[k].Length; j++)
            {
                int row = parts[k][j];
                if ((uint)row >= (uint)count) throw new ArgumentException($"part {k} names row {row}, outside 0..{count - 1}", "partsOf");
                if (part[row] >= 0) throw new ArgumentException($"row {row} is in part {part[row]} and part {k}", "partsOf");
                part[row] = k;
                index[row] = j;
            }
        return (part, index);
    }

    /// <summary>
    /// The streamed read; null when the file is not a well-formed IDX3 image file whose size agrees with its header
    /// (the whole-file reader then says what is wrong, in its words).
    /// </summary>
    private static (byte[][] Parts, int Rows, int Cols)? TryStreamImages(string path, Func<int, int[][]> partsOf)
    {
        const int HeaderBytes = 16;
        FileStream file;
        try { file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        using (file)
        {
            try
            {
                Span<byte> head = stackalloc byte[HeaderBytes];
                if (file.ReadAtLeast(head[..2], 2, throwOnEndOfStream: false) < 2) return null;
                bool gzip = DataInput.IsGzip(head);
                long fileLength = file.Length;
                file.Position = 0;
                using Stream input = gzip ? new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionMode.Decompress, leaveOpen: true) : file;
                if (input.ReadAtLeast(head, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes) return null;
                if (BinaryPrimitives.ReadInt32BigEndian(head) != ImagesMagic) return null;
                uint count = BinaryPrimitives.ReadUInt32BigEndian(head[4..]), rows = BinaryPrimitives.ReadUInt32BigEndian(head[8..]),
                    cols = BinaryPrimitives.ReadUInt32BigEndian(head[12..]);
                if (count > int.MaxValue || rows is 0 or > int.MaxValue || cols is 0 or > int.MaxValue) return null;
                long perImage = (long)rows * cols, expected = perImage * count;
                if (perImage > Array.MaxLength || (count > 0 && perImage > Array.MaxLength / count)) return null;
                // raw: the file's size must be the header's; gzipped: no more than deflate can expand to (1032:1) nor the reader's limit
                if (gzip ? HeaderBytes + expected > Math.Min(DataInput.DefaultMaxDecompressedBytes, fileLength * 1032) : HeaderBytes + expected != fileLength)
                    return null;

                var parts = partsOf((int)count);
                var (part, index) = Destinations(parts, (int)count);
                int d = (int)perImage;
                var pixels = parts.Select(rowsOfPart => Backprop.Core.LargeArrays.Uninitialized<byte>((long)rowsOfPart.Length * d)).ToArray();   // every listed row is written below
                int chunkRows = Math.Max(1, (1 << 16) / d);
                var buffer = new byte[(long)chunkRows * d];
                for (int first = 0; first < count; first += chunkRows)
                {
                    int n = (int)Math.Min(chunkRows, count - first);
                    if (input.ReadAtLeast(buffer.AsSpan(0, n * d), n * d, throwOnEndOfStream: false) < n * d) return null;
                    for (int r = 0; r < n; r++)
                    {
                        int k = part[first + r];
                        if (k < 0) continue;
                        buffer.AsSpan(r * d, d).CopyTo(pixels[k].AsSpan(index[first + r] * d, d));
                    }
                }
                if (input.ReadByte() >= 0) return null;   // more pixels than the header says
                return (pixels, (int)rows, (int)cols);
            }
            catch (Exception e) when (e is InvalidDataException or IOException) { return null; }
        }
    }

    /// <summary>Reads an IDX1 label file (raw or gzipped).</summary>
    public static int[] ReadLabels(string path) => ParseLabels(DataInput.ReadMaybeGzip(path), path);

    /// <summary>Reads an IDX1 label file (raw or gzipped) as its raw bytes.</summary>
    public static byte[] ReadLabelBytes(string path) => ParseLabelBytes(DataInput.ReadMaybeGzip(path), path);

    /// <summary>Parses the content of an IDX3 image file (raw or gzipped); <paramref name="source"/> names it in errors.</summary>
    public static IdxImages ParseImages(byte[] content, string source)
    {
        ArgumentNullException.ThrowIfNull(content);
        var data = DataInput.MaybeGunzip(content, source);
        const int HeaderBytes = 16;
        CheckMagic(data, source, ImagesMagic, "images (IDX3)");
        if (data.Length < HeaderBytes)
            throw new DataFormatException(source, $"the file holds {data.Length} bytes, too short for the 16-byte IDX3 image header");
        long count = ReadDim(data, 4, source, "image count");
        long rows = ReadDim(data, 8, source, "rows");
        long cols = ReadDim(data, 12, source, "columns");
        if (rows == 0 || cols == 0)
            throw new DataFormatException(source, $"header claims images of {rows}×{cols}; both dimensions must be at least 1");
        long perImage = rows * cols; // < 2^62
        long held = data.Length - HeaderBytes;
        bool fits = perImage <= Array.MaxLength && (count == 0 || perImage <= Array.MaxLength / count);
        if (!fits || count * perImage != held)
            throw new DataFormatException(source,
                $"header claims {count} images of {rows}×{cols} ({FormatBytes(count, perImage)} of pixels) but the file holds {held} bytes of pixels");
        long expected = count * perImage;

        var pixels = Backprop.Core.LargeArrays.Uninitialized<float>(expected);   // every pixel is written below
        var src = data.AsSpan(HeaderBytes);
        var table = ByteToUnit;
        for (int i = 0; i < pixels.Length; i++) pixels[i] = table[src[i]];
        return new IdxImages(pixels, (int)count, (int)rows, (int)cols);
    }

    /// <summary>Parses the content of an IDX1 label file (raw or gzipped) into ints.</summary>
    public static int[] ParseLabels(byte[] content, string source)
    {
        var bytes = ParseLabelBytes(content, source);
        var labels = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) labels[i] = bytes[i];
        return labels;
    }

    /// <summary>Parses the content of an IDX1 label file (raw or gzipped) into its label bytes.</summary>
    public static byte[] ParseLabelBytes(byte[] content, string source)
    {
        ArgumentNullException.ThrowIfNull(content);
        var data = DataInput.MaybeGunzip(content, source);
        const int HeaderBytes = 8;
        CheckMagic(data, source, LabelsMagic, "labels (IDX1)");
        if (data.Length < HeaderBytes)
            throw new DataFormatException(source, $"the file holds {data.Length} bytes, too short for the 8-byte IDX1 label header");
        long count = ReadDim(data, 4, source, "label count");
        long held = data.Length - HeaderBytes;
        if (count != held)
            throw new DataFormatException(source, $"header claims {count} labels but the file holds {held} bytes of labels");
        return data.AsSpan(HeaderBytes).ToArray();
    }

    private static void CheckMagic(byte[] data, string source, int magic, string what)
    {
        if (data.Length < 4)
            throw new DataFormatException(source, $"the file holds {data.Length} bytes, too short for an IDX magic number (expected 0x{magic:X8} for {what})");
        int got = BinaryPrimitives.ReadInt32BigEndian(data);
        if (got != magic)
        {
            string hint = got switch
            {
                ImagesMagic => " (an IDX3 image file)",
                LabelsMagic => " (an IDX1 label file)",
                _ when (got & unchecked((int)0xFFFF0000)) == 0 => $" (IDX type 0x{(got >> 8) & 0xFF:X2} with {got & 0xFF} dimensions)",
                _ => " (not an IDX file)",
            };
            throw new DataFormatException(source, $"magic number is 0x{got:X8}{hint}, expected 0x{magic:X8} for {what}");
        }
    }

    private static long ReadDim(byte[] data, int offset, string source, string field)
    {
        uint v = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(offset));
        if (v > int.MaxValue)
            throw new DataFormatException(source, $"header field '{field}' is {v}, more than {int.MaxValue}");
        return v;
    }

    private static string FormatBytes(long count, long perItem)
    {
        // count * perItem may overflow for hostile headers; report in decimal when it fits, else as a product.
        if (perItem == 0 || count <= long.MaxValue / perItem) return $"{count * perItem} bytes";
        return $"{count}×{perItem} bytes";
    }
}
