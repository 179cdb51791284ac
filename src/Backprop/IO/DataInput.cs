using System.Buffers.Binary;
using System.IO.Compression;

namespace Backprop.IO;

/// <summary>Reading whole input files, transparently gunzipping, with every failure turned into a <see cref="DataFormatException"/>.</summary>
internal static class DataInput
{
    /// <summary>The most a gzipped input may decompress to (1 GiB).</summary>
    internal const long DefaultMaxDecompressedBytes = 1L << 30;

    internal static bool IsGzip(ReadOnlySpan<byte> data) => data.Length >= 2 && data[0] == 0x1f && data[1] == 0x8b;

    /// <summary>Reads a file's bytes. Missing or unreadable files become <see cref="DataFormatException"/>s.</summary>
    internal static byte[] ReadFile(string path, long maxBytes = int.MaxValue)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            long len = fs.Length;
            if (len > maxBytes || len > Array.MaxLength)
                throw new DataFormatException(path, $"the file is {len} bytes, more than the {Math.Min(maxBytes, Array.MaxLength)} this reader accepts");
            var buf = new byte[len];
            int read = 0;
            while (read < buf.Length)
            {
                int n = fs.Read(buf, read, buf.Length - read);
                if (n == 0) break;
                read += n;
            }
            if (read != buf.Length) Array.Resize(ref buf, read);
            return buf;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new DataFormatException(path, "no such file", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new DataFormatException(path, $"cannot be read: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new DataFormatException(path, $"cannot be read: {e.Message}", e);
        }
    }

    /// <summary>Reads a file and gunzips it when it starts with the gzip magic 1f 8b (whatever its name).</summary>
    internal static byte[] ReadMaybeGzip(string path, long maxDecompressed = DefaultMaxDecompressedBytes)
    {
        var raw = ReadFile(path);
        return IsGzip(raw) ? Gunzip(raw, path, maxDecompressed) : raw;
    }

    /// <summary>Returns <paramref name="data"/> gunzipped when it starts with the gzip magic, else itself.</summary>
    internal static byte[] MaybeGunzip(byte[] data, string source, long maxDecompressed = DefaultMaxDecompressedBytes)
        => IsGzip(data) ? Gunzip(data, source, maxDecompressed) : data;

    /// <summary>
    /// Decompresses gzip data into an exactly sized array. The buffer grows only as real data arrives
    /// (the gzip trailer's size field is used as a capped hint), so a lying header cannot force a huge allocation.
    /// </summary>
    internal static byte[] Gunzip(byte[] compressed, string source, long maxDecompressed = DefaultMaxDecompressedBytes)
    {
        maxDecompressed = Math.Min(maxDecompressed, Array.MaxLength);
        // ISIZE: the uncompressed length mod 2^32 of the last member. Deflate cannot expand by more than ~1032:1.
        long hint = 1 << 16;
        if (compressed.Length >= 18)
        {
            long isize = BinaryPrimitives.ReadUInt32LittleEndian(compressed.AsSpan(compressed.Length - 4));
            long plausible = Math.Min(maxDecompressed, (long)compressed.Length * 1032);
            if (isize > 0 && isize <= plausible) hint = isize;
        }
        // written before it is read: the part past the data is cut off at the end
        var buf = Backprop.Core.LargeArrays.Uninitialized<byte>(hint);
        long total = 0;
        try
        {
            using var gz = new GZipStream(new MemoryStream(compressed, writable: false), CompressionMode.Decompress);
            while (true)
            {
                if (total == buf.Length)
                {
                    // Full: probe for one more byte before growing, so an exact size hint costs no copy.
                    int b = gz.ReadByte();
                    if (b < 0) break;
                    if (buf.Length >= maxDecompressed)
                        throw new DataFormatException(source, $"gzip data decompresses to more than {maxDecompressed} bytes");
                    long grow = Math.Min(maxDecompressed, Math.Max(buf.Length * 2L, 1 << 16));
                    Array.Resize(ref buf, (int)grow);
                    buf[total++] = (byte)b;
                }
                int n = gz.Read(buf, (int)total, (int)(buf.Length - total));
                if (n == 0) break;
                total += n;
            }
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException(source, $"gzip data is corrupt ({FirstLine(e.Message)})", e);
        }
        catch (IOException e)
        {
            throw new DataFormatException(source, $"gzip data cannot be decompressed ({FirstLine(e.Message)})", e);
        }
        if (total != buf.Length) Array.Resize(ref buf, (int)total);
        return buf;
    }

    private static string FirstLine(string s)
    {
        int i = s.AsSpan().IndexOfAny('\r', '\n');
        return (i < 0 ? s : s[..i]).TrimEnd('.');
    }
}
