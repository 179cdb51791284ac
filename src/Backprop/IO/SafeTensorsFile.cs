using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Backprop.Core;

namespace Backprop.IO;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed class SafeTensorInfo
{
    private readonly int[] _shape;

    internal SafeTensorInfo(string name, string dtype, int[] shape, long elementCount, long begin, long end)
    {
        Name = name;
        DType = dtype;
        _shape = shape;
        ElementCount = elementCount;
        DataBegin = begin;
        DataEnd = end;
    }

    /// <summary>The tensor's name, the key of its entry in the header.</summary>
    public string Name { get; }
    /// <summary>The dtype as written in the header: F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2.</summary>
    public string DType { get; }
    /// <summary>The dimensions, outermost first (empty for a scalar).</summary>
    public ReadOnlySpan<int> Shape => _shape;
    /// <summary>A copy of <see cref="Shape"/> as an array.</summary>
    public int[] ShapeArray => (int[])_shape.Clone();
    /// <summary>The number of dimensions (0 for a scalar).</summary>
    public int Rank => _shape.Length;
    /// <summary>Product of the shape (1 for a scalar).</summary>
    public long ElementCount { get; }
    /// <summary>Start of the data, relative to the start of the byte buffer.</summary>
    public long DataBegin { get; }
    /// <summary>End (exclusive) of the data, relative to the start of the byte buffer.</summary>
    public long DataEnd { get; }
    /// <summary>The size of the data in bytes: <see cref="ElementCount"/> × the dtype's size, which the reader has checked.</summary>
    public long ByteCount => DataEnd - DataBegin;

    /// <summary>"name: dtype [d0×d1×…]", for messages and listings.</summary>
    public override string ToString() => $"{Name}: {DType} [{string.Join("×", _shape)}]";
}

/// <summary>A tensor to write into a safetensors file: F32 or F64 data with its shape.</summary>
public sealed class SafeTensorEntry
{
    private SafeTensorEntry(string name, int[] shape, float[]? f32, double[]? f64)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (name == SafeTensorsFile.MetadataKey) throw new ArgumentException($"'{SafeTensorsFile.MetadataKey}' is reserved and cannot name a tensor", nameof(name));
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"tensor '{name}' has a negative dimension in [{string.Join(", ", shape)}]", nameof(shape));
            n = checked(n * d);
        }
        long length = f32?.Length ?? f64!.Length;
        if (n != length)
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] holds {n} elements but the data has {length}", nameof(shape));
        Name = name;
        Shape = (int[])shape.Clone();
        F32 = f32;
        F64 = f64;
    }

    /// <summary>The name the tensor is written under.</summary>
    public string Name { get; }
    /// <summary>The dimensions, outermost first; their product is the data's length.</summary>
    public int[] Shape { get; }
    /// <summary>"F32" or "F64", the dtype the data is written as.</summary>
    public string DType => F32 is not null ? "F32" : "F64";
    internal float[]? F32 { get; }
    internal double[]? F64 { get; }
    internal int ElementSize => F32 is not null ? 4 : 8;
    internal long ByteCount => (long)(F32?.Length ?? F64!.Length) * ElementSize;

    /// <summary>An F32 tensor holding <paramref name="data"/> (row-major, not copied) with the given shape.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is "__metadata__", a dimension is negative, or the
    /// shape's product differs from the data's length.</exception>
    public static SafeTensorEntry Float32(string name, float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new SafeTensorEntry(name, shape, data, null);
    }

    /// <summary>An F64 tensor holding <paramref name="data"/> (row-major, not copied) with the given shape.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is "__metadata__", a dimension is negative, or the
    /// shape's product differs from the data's length.</exception>
    public static SafeTensorEntry Float64(string name, double[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new SafeTensorEntry(name, shape, null, data);
    }

    /// <summary>A float tensor is written as F32, a double one as F64.</summary>
    public static SafeTensorEntry From<T>(string name, Tensor<T> tensor) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (typeof(T) == typeof(float)) return new SafeTensorEntry(name, tensor.ShapeArray, System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(tensor.Span).ToArray(), null);
        if (typeof(T) == typeof(double)) return new SafeTensorEntry(name, tensor.ShapeArray, null, System.Runtime.InteropServices.MemoryMarshal.Cast<T, double>(tensor.Span).ToArray());
        throw new ArgumentException($"tensor '{name}': only float and double tensors can be written, not {typeof(T).Name}");
    }
}

/// <summary>
/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
/// N bytes of UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}},
/// then the byte buffer the offsets point into. The reader validates everything before it trusts it and reads
/// F32, F64, F16, BF16 (and integer dtypes) as float or double; the writer writes F32/F64 atomically.
/// </summary>
public sealed class SafeTensorsFile
{
    /// <summary>The reserved header key of the string-to-string metadata map; no tensor may have this name.</summary>
    public const string MetadataKey = "__metadata__";
    /// <summary>The largest header accepted (100 MB), as in the reference implementation.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly byte[] _bytes;
    private readonly long _bufferStart;
    private readonly Dictionary<string, SafeTensorInfo> _byName;

    private SafeTensorsFile(string source, byte[] bytes, long bufferStart, List<SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Source = source;
        _bytes = bytes;
        _bufferStart = bufferStart;
        Tensors = tensors;
        Names = tensors.Select(t => t.Name).ToArray();
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Metadata = metadata;
    }

    /// <summary>The file (or source name) read.</summary>
    public string Source { get; }
    /// <summary>The tensors, in the order of their data in the buffer.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }
    /// <summary>The tensor names, in the order of their data in the buffer.</summary>
    public IReadOnlyList<string> Names { get; }
    /// <summary>The "__metadata__" entries (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/> (ordinal comparison).</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>; a missing tensor is a <see cref="DataFormatException"/>.</summary>
    public SafeTensorInfo GetInfo(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_byName.TryGetValue(name, out var info)) return info;
        const int Shown = 12;
        string list = Names.Count == 0 ? "none" : string.Join(", ", Names.Take(Shown)) + (Names.Count > Shown ? ", …" : "");
        throw new DataFormatException(Source, $"no tensor named {DataFormatException.Quote(name)} (the file holds: {list})");
    }

    /// <summary>Reads and validates a safetensors file.</summary>
    public static SafeTensorsFile Read(string path) => Parse(DataInput.ReadFile(path), path);

    /// <summary>Validates and wraps safetensors content; <paramref name="source"/> names it in errors.</summary>
    public static SafeTensorsFile Parse(byte[] bytes, string source)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(source);
        if (bytes.Length < 8)
            throw new DataFormatException(source, $"the file holds {bytes.Length} bytes, too short for the 8-byte header length");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        // a length that cannot be, and no JSON object after it: another kind of file (a CSV, a checkpoint of another tool)
        if ((n > MaxHeaderBytes || n > (ulong)(bytes.Length - 8)) && (bytes.Length == 8 || bytes[8] != (byte)'{'))
            throw new DataFormatException(source, "not a safetensors file: it does not start with a header length and a JSON header");
        if (n > MaxHeaderBytes)
            throw new DataFormatException(source, $"header length field claims {n} bytes, more than the {MaxHeaderBytes} allowed");
        if (n > (ulong)(bytes.Length - 8))
            throw new DataFormatException(source, $"header length field claims {n} bytes but only {bytes.Length - 8} bytes follow it");
        int headerLen = (int)n;
        var header = bytes.AsSpan(8, headerLen);
        if (headerLen == 0 || header[0] != (byte)'{')
            throw new DataFormatException(source, "header is not a JSON object (it must start with '{')");
        if (!System.Text.Unicode.Utf8.IsValid(header))
            throw new DataFormatException(source, "header is not valid UTF-8");
        long bufferStart = 8L + headerLen;
        long bufferLen = bytes.Length - bufferStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes.AsMemory(8, headerLen), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new DataFormatException(source, $"header is not valid JSON ({FirstSentence(e.Message)})", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new DataFormatException(source, $"header is a JSON {root.ValueKind}, not an object");
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var tensors = new List<SafeTensorInfo>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in root.EnumerateObject())
            {
                string name = prop.Name;
                if (!seen.Add(name))
                    throw new DataFormatException(source, $"header names {DataFormatException.Quote(name)} twice");
                if (name == MetadataKey)
                {
                    ReadMetadata(source, prop.Value, metadata);
                    continue;
                }
                tensors.Add(ReadEntry(source, name, prop.Value, bufferLen));
            }
            // Order by data position, then check that no two non-empty tensors share bytes.
            tensors.Sort((a, b) => a.DataBegin != b.DataBegin ? a.DataBegin.CompareTo(b.DataBegin) : a.DataEnd.CompareTo(b.DataEnd));
            SafeTensorInfo? prev = null;
            foreach (var t in tensors)
            {
                if (t.ByteCount == 0) continue;
                if (prev is not null && t.DataBegin < prev.DataEnd)
                    throw new DataFormatException(source,
                        $"tensor {DataFormatException.Quote(t.Name)} (bytes {t.DataBegin}–{t.DataEnd}) overlaps tensor {DataFormatException.Quote(prev.Name)} (bytes {prev.DataBegin}–{prev.DataEnd})");
                prev = t;
            }
            return new SafeTensorsFile(source, bytes, bufferStart, tensors, metadata);
        }
    }

    private static void ReadMetadata(string source, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw new DataFormatException(source, $"'{MetadataKey}' is a JSON {value.ValueKind}, not an object of strings");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw new DataFormatException(source, $"'{MetadataKey}' entry {DataFormatException.Quote(m.Name)} is a JSON {m.Value.ValueKind}, not a string");
            if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                throw new DataFormatException(source, $"'{MetadataKey}' names {DataFormatException.Quote(m.Name)} twice");
        }
    }

    private static SafeTensorInfo ReadEntry(string source, string name, JsonElement e, long bufferLen)
    {
        string q = DataFormatException.Quote(name);
        if (e.ValueKind != JsonValueKind.Object)
            throw new DataFormatException(source, $"tensor {q}: entry is a JSON {e.ValueKind}, not an object");
        if (!e.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
            throw new DataFormatException(source, $"tensor {q}: 'dtype' is missing or not a string");
        string dtype = dtypeEl.GetString()!;
        int size = DTypeSize(dtype);
        if (size == 0)
            throw new DataFormatException(source, $"tensor {q}: unknown dtype {DataFormatException.Quote(dtype)}");
        if (!e.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array)
            throw new DataFormatException(source, $"tensor {q}: 'shape' is missing or not an array");
        var shape = new int[shapeEl.GetArrayLength()];
        long elements = 1;
        bool overflow = false;
        int k = 0;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v))
                throw new DataFormatException(source, $"tensor {q}: shape dimension {k} is not an integer");
            if (v < 0)
                throw new DataFormatException(source, $"tensor {q}: shape dimension {k} is negative ({v})");
            if (v > int.MaxValue)
                throw new DataFormatException(source, $"tensor {q}: shape dimension {k} is {v}, more than {int.MaxValue}");
            shape[k++] = (int)v;
            if (!overflow)
            {
                try { elements = checked(elements * v); } catch (OverflowException) { overflow = true; }
            }
        }
        if (!e.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
            throw new DataFormatException(source, $"tensor {q}: 'data_offsets' is missing or not an array [begin, end]");
        long begin = ReadOffset(source, q, offEl[0], "begin");
        long end = ReadOffset(source, q, offEl[1], "end");
        if (begin > end)
            throw new DataFormatException(source, $"tensor {q}: data_offsets begin {begin} is after end {end}");
        if (end > bufferLen)
            throw new DataFormatException(source, $"tensor {q}: data_offsets end {end} is past the end of the {bufferLen}-byte data buffer");
        string shapeText = $"[{string.Join(", ", shape)}]";
        if (overflow || elements > long.MaxValue / size || elements * size != end - begin)
            throw new DataFormatException(source,
                $"tensor {q}: shape {shapeText} of {dtype} needs {(overflow ? "more than 2^63 elements" : elements > long.MaxValue / size ? $"{elements}×{size} bytes" : $"{elements * size} bytes")} but data_offsets span {end - begin} bytes");
        return new SafeTensorInfo(name, dtype, shape, elements, begin, end);
    }

    private static long ReadOffset(string source, string q, JsonElement v, string which)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x))
            throw new DataFormatException(source, $"tensor {q}: data_offsets {which} is not an integer");
        if (x < 0)
            throw new DataFormatException(source, $"tensor {q}: data_offsets {which} is negative ({x})");
        return x;
    }

    /// <summary>Bytes per element of a safetensors dtype; 0 for an unknown one.</summary>
    public static int DTypeSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => 0,
    };

    private ReadOnlySpan<byte> DataOf(SafeTensorInfo t) => _bytes.AsSpan((int)(_bufferStart + t.DataBegin), (int)t.ByteCount);

    private void CheckLength(SafeTensorInfo t)
    {
        if (t.ElementCount > Array.MaxLength)
            throw new DataFormatException(Source, $"tensor {DataFormatException.Quote(t.Name)} holds {t.ElementCount} elements, more than an array can");
    }

    /// <summary>The tensor's elements converted to float (row-major).</summary>
    public float[] GetFloats(string name)
    {
        var t = GetInfo(name);
        CheckLength(t);
        var src = DataOf(t);
        var dst = new float[t.ElementCount];
        switch (t.DType)
        {
            case "F32":
                if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                else for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(i * 4)..]);
                break;
            case "F64":
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(i * 8)..]);
                break;
            default:
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)ReadAsDouble(t, src, i);
                break;
        }
        return dst;
    }

    /// <summary>The tensor's elements converted to double (row-major).</summary>
    public double[] GetDoubles(string name)
    {
        var t = GetInfo(name);
        CheckLength(t);
        var src = DataOf(t);
        var dst = new double[t.ElementCount];
        switch (t.DType)
        {
            case "F64":
                if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, double>(src).CopyTo(dst);
                else for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadDoubleLittleEndian(src[(i * 8)..]);
                break;
            default:
                for (int i = 0; i < dst.Length; i++) dst[i] = ReadAsDouble(t, src, i);
                break;
        }
        return dst;
    }

    /// <summary>The tensor as a <see cref="Tensor{T}"/> of float or double, with its shape.</summary>
    public Tensor<T> GetTensor<T>(string name) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = GetInfo(name);
        if (typeof(T) == typeof(float)) return (Tensor<T>)(object)new Tensor<float>(GetFloats(name), t.ShapeArray);
        if (typeof(T) == typeof(double)) return (Tensor<T>)(object)new Tensor<double>(GetDoubles(name), t.ShapeArray);
        var d = GetDoubles(name);
        var data = new T[d.Length];
        for (int i = 0; i < d.Length; i++) data[i] = T.CreateTruncating(d[i]);
        return new Tensor<T>(data, t.ShapeArray);
    }

    /// <summary>The tensor's raw little-endian bytes.</summary>
    public byte[] GetBytes(string name) => DataOf(GetInfo(name)).ToArray();

    private double ReadAsDouble(SafeTensorInfo t, ReadOnlySpan<byte> src, int i) => t.DType switch
    {
        "F64" => BinaryPrimitives.ReadDoubleLittleEndian(src[(i * 8)..]),
        "F32" => BinaryPrimitives.ReadSingleLittleEndian(src[(i * 4)..]),
        "F16" => (double)BinaryPrimitives.ReadHalfLittleEndian(src[(i * 2)..]),
        "BF16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(i * 2)..]) << 16),
        "I64" => BinaryPrimitives.ReadInt64LittleEndian(src[(i * 8)..]),
        "U64" => BinaryPrimitives.ReadUInt64LittleEndian(src[(i * 8)..]),
        "I32" => BinaryPrimitives.ReadInt32LittleEndian(src[(i * 4)..]),
        "U32" => BinaryPrimitives.ReadUInt32LittleEndian(src[(i * 4)..]),
        "I16" => BinaryPrimitives.ReadInt16LittleEndian(src[(i * 2)..]),
        "U16" => BinaryPrimitives.ReadUInt16LittleEndian(src[(i * 2)..]),
        "I8" => (sbyte)src[i],
        "U8" => src[i],
        "BOOL" => src[i] != 0 ? 1 : 0,
        _ => throw new DataFormatException(Source, $"tensor {DataFormatException.Quote(t.Name)}: dtype {t.DType} cannot be converted to a floating-point array"),
    };

    // ---------------------------------------------------------------- writing

    /// <summary>
    /// Writes F32/F64 tensors and string metadata to <paramref name="path"/> atomically (<see cref="AtomicFile"/>).
    /// The header is padded with spaces to a multiple of 8 bytes, so the data buffer starts 8-byte aligned. Tensors are
    /// laid out contiguously (as the reference reader requires) in sorted name order, F64 tensors before F32 ones so
    /// every tensor is aligned to its element size.
    /// </summary>
    public static void Write(string path, IEnumerable<SafeTensorEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var plan = Plan(tensors, metadata);
        AtomicFile.Write(path, s => WritePlan(s, plan));
    }

    /// <summary>Writes float tensors (F32).</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor<float>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        => Write(path, (tensors ?? throw new ArgumentNullException(nameof(tensors))).Select(kv => SafeTensorEntry.From(kv.Key, kv.Value)), metadata);

    /// <summary>Writes double tensors (F64).</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor<double>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
        => Write(path, (tensors ?? throw new ArgumentNullException(nameof(tensors))).Select(kv => SafeTensorEntry.From(kv.Key, kv.Value)), metadata);

    /// <summary>Writes the safetensors bytes to a stream (not atomically: use <see cref="Write(string, IEnumerable{SafeTensorEntry}, IReadOnlyDictionary{string, string}?)"/> for files).</summary>
    public static void WriteTo(Stream stream, IEnumerable<SafeTensorEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        WritePlan(stream, Plan(tensors, metadata));
    }

    /// <summary>The safetensors bytes of the tensors and metadata.</summary>
    public static byte[] Serialize(IEnumerable<SafeTensorEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var ms = new MemoryStream();
        WriteTo(ms, tensors, metadata);
        return ms.ToArray();
    }

    private sealed record WritePlanData(byte[] Header, List<SafeTensorEntry> Order);

    private static WritePlanData Plan(IEnumerable<SafeTensorEntry> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            ArgumentNullException.ThrowIfNull(t, nameof(tensors));
            if (!names.Add(t.Name)) throw new ArgumentException($"two tensors are named '{t.Name}'", nameof(tensors));
        }
        var order = list.OrderByDescending(t => t.ElementSize).ThenBy(t => t.Name, StringComparer.Ordinal).ToList();

        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var kv in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    ArgumentNullException.ThrowIfNull(kv.Value, nameof(metadata));
                    w.WriteString(kv.Key, kv.Value);
                }
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in order)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType);
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.ByteCount);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.ByteCount;
            }
            w.WriteEndObject();
        }
        int len = (int)ms.Length;
        int padded = (len + 7) / 8 * 8;
        var header = new byte[padded];
        ms.GetBuffer().AsSpan(0, len).CopyTo(header);
        header.AsSpan(len).Fill((byte)' ');
        return new WritePlanData(header, order);
    }

    private static void WritePlan(Stream s, WritePlanData plan)
    {
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)plan.Header.Length);
        s.Write(len);
        s.Write(plan.Header);
        var buf = new byte[1 << 16];
        foreach (var t in plan.Order)
        {
            if (BitConverter.IsLittleEndian)
            {
                if (t.F32 is not null) s.Write(MemoryMarshal.AsBytes(t.F32.AsSpan()));
                else s.Write(MemoryMarshal.AsBytes(t.F64!.AsSpan()));
                continue;
            }
            int size = t.ElementSize;
            int n = t.F32?.Length ?? t.F64!.Length;
            int per = buf.Length / size;
            for (int i = 0; i < n; i += per)
            {
                int m = Math.Min(per, n - i);
                for (int k = 0; k < m; k++)
                {
                    if (t.F32 is not null) BinaryPrimitives.WriteSingleLittleEndian(buf.AsSpan(k * 4), t.F32[i + k]);
                    else BinaryPrimitives.WriteDoubleLittleEndian(buf.AsSpan(k * 8), t.F64![i + k]);
                }
                s.Write(buf, 0, m * size);
            }
        }
    }

    private static string FirstSentence(string s)
    {
        int i = s.AsSpan().IndexOfAny('\r', '\n');
        return (i < 0 ? s : s[..i]).TrimEnd('.');
    }
}
