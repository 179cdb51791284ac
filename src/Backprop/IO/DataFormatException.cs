
namespace Backprop.IO;

/// <summary>
/// Bad input data: a file that is missing, unreadable, truncated, corrupt or inconsistent.
/// The message is a single line of the form "FILE: fault", naming the file, the field and the fault,
/// e.g. "data/mnist/t10k-images-idx3-ubyte.gz: header claims 10000 images of 28×28 but the file holds 512 bytes of pixels".
/// Every reader in <see cref="Backprop.IO"/> and <see cref="Backprop.Data"/> throws only this for bad input.
/// </summary>
public sealed class DataFormatException : Exception
{
    /// <summary>Builds the exception with a complete message, which should name the file; line breaks in it become spaces.</summary>
    public DataFormatException(string message) : base(OneLine(message)) { }

    /// <summary>Builds the exception with a complete message (line breaks become spaces) and the exception that revealed the fault.</summary>
    public DataFormatException(string message, Exception? innerException) : base(OneLine(message), innerException) { }

    /// <summary>Builds the exception with the message "<paramref name="file"/>: <paramref name="fault"/>".</summary>
    public DataFormatException(string file, string fault, Exception? innerException = null)
        : base(OneLine($"{file}: {fault}"), innerException)
    {
        FilePath = file;
        Fault = OneLine(fault);
    }

    /// <summary>The file the fault was found in, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The fault without the file name, when built with the (file, fault) constructor.</summary>
    public string? Fault { get; }

    internal static string OneLine(string s)
    {
        if (s.AsSpan().IndexOfAny('\r', '\n') < 0) return s;
        return s.Replace("\r\n", " ").Replace('\r', ' ').Replace('\n', ' ');
    }

    /// <summary>The first <paramref name="shown"/> of <paramref name="values"/>, each quoted (<see cref="Quote"/>), comma-separated, then "…" when there are more.</summary>
    internal static string QuoteList(IReadOnlyCollection<string> values, int shown) =>
        string.Join(", ", values.Take(shown).Select(Quote)) + (values.Count > shown ? ", …" : "");

    /// <summary>Quotes a value taken from the data for a message: one line, at most 40 characters.</summary>
    internal static string Quote(string value)
    {
        const int Max = 40;
        var v = value.Length > Max ? string.Concat(value.AsSpan(0, Max), "…") : value;
        var sb = new System.Text.StringBuilder(v.Length + 2);
        sb.Append('\'');
        foreach (var c in v)
        {
            if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (char.IsControl(c)) sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        sb.Append('\'');
        return sb.ToString();
    }
}
