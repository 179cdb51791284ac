using System.Globalization;
using System.Text;
using Backprop.IO;

namespace Backprop.Data;

/// <summary>What a CSV file's target columns hold: class labels (one column), numbers (regression) or 0/1 (multi-label).</summary>
public enum TargetKind
{
    /// <summary>One column of class labels, mapped to class indices 0, 1, … (classification, softmax outputs).</summary>
    Classes,
    /// <summary>One or more columns of real numbers (regression, one output per column).</summary>
    Values,
    /// <summary>One or more columns of 0/1 labels, each an independent yes/no (multi-label, sigmoid outputs).</summary>
    Binary,
}

/// <summary>Which columns are targets, what they hold (null: inferred, see <see cref="CsvDataset.ParseText(string, string, CsvTargets)"/>), and a saved class mapping.</summary>
/// <param name="Columns">The target columns' header names; null for the default (<c>label</c>, else the last column).</param>
/// <param name="Kind">What the target columns hold; null to infer it from the values.</param>
/// <param name="LabelNames">A saved class mapping (class index → name), so labels map to the same indices as when the model was trained; null to derive one.</param>
/// <param name="FeaturesOnly">No target columns: every column is a feature (rows to predict); the labels are placeholders.</param>
/// <param name="SkipTargets">The target columns are found and dropped without being read (rows to predict, whose labels
/// may be empty, unknown or not 0/1); the labels are placeholders and there are no target values.</param>
/// <param name="FeatureNames">The feature columns a saved model was trained on, in its input order; null: features are
/// taken by position (a model recorded without them). When the file's feature columns are exactly these names, in any
/// order, they are taken by name in this order; a name the header lacks is an error naming it.</param>
public sealed record CsvTargets(IReadOnlyList<string>? Columns = null, TargetKind? Kind = null, IReadOnlyList<string>? LabelNames = null, bool FeaturesOnly = false,
    bool SkipTargets = false, IReadOnlyList<string>? FeatureNames = null);

/// <summary>
/// A data set read from a CSV file with a header row (plain or gzipped, detected by the gzip magic).
/// The label column is the one the caller names, else the one named <c>label</c>, else the last column; every other
/// column is a numeric feature (invariant culture). Fields may be quoted as in RFC 4180 and are trimmed of whitespace.
/// Blank lines are skipped. In messages, "row N" is the file's line N (the header is row 1), where the record starts.
/// </summary>
/// <remarks>
/// Class indices: the distinct label strings sorted (numerically when every label is an integer, e.g. "2" &lt; "10";
/// ordinally otherwise) map to 0, 1, …; <see cref="LabelNames"/>[i] is class i's name. Pass the names saved with a model
/// as <c>labelNames</c> to map labels the same way at predict time (an unknown label is then an error).
/// </remarks>
public sealed class CsvDataset
{
    private CsvDataset(string source, string[] featureNames, string[] labelColumns, string[] labelNames, LabeledData data, TargetKind kind, bool kindInferred,
        int[] rows)
    {
        Source = source;
        Rows = rows;
        FeatureNames = featureNames;
        LabelColumns = labelColumns;
        LabelNames = labelNames;
        Data = data;
        Kind = kind;
        KindInferred = kindInferred;
    }

    /// <summary>Header names of the target columns: one for class labels, one or more for values and multi-label.</summary>
    public string[] LabelColumns { get; }
    /// <summary>What the target columns hold.</summary>
    public TargetKind Kind { get; }
    /// <summary>True when no kind was asked for and one column of non-integer numbers was read as regression targets.</summary>
    public bool KindInferred { get; }

    /// <summary>The file line each data row starts on (the header is line 1), as messages name rows: "row N".</summary>
    public int[] Rows { get; }

    /// <summary>The file (or source name) the data came from.</summary>
    public string Source { get; }
    /// <summary>Header names of the feature columns, in order.</summary>
    public string[] FeatureNames { get; }
    /// <summary>Header name of the label column (the target columns joined with commas).</summary>
    public string LabelColumn => string.Join(",", LabelColumns);
    /// <summary>Class index → label string (for values and multi-label: the target column names). Save it with a model.</summary>
    public string[] LabelNames { get; }
    /// <summary>The rows: features, and class indices or target values.</summary>
    public LabeledData Data { get; }

    /// <summary>The features, row-major, <see cref="Count"/> × <see cref="FeatureCount"/> (the same array as <see cref="Data"/>'s).</summary>
    public float[] Features => Data.Features;
    /// <summary>One class index per row (placeholders for values and multi-label targets).</summary>
    public int[] Labels => Data.Labels;
    /// <summary>The number of data rows (the header and blank lines not counted).</summary>
    public int Count => Data.Count;
    /// <summary>The number of feature columns.</summary>
    public int FeatureCount => Data.FeatureCount;
    /// <summary>The number of classes (for values and multi-label: of target columns), the network's outputs.</summary>
    public int ClassCount => LabelNames.Length;

    /// <summary>Reads a CSV file (or gzipped CSV).</summary>
    /// <param name="path">The file; gzip is detected by its magic bytes, not its name.</param>
    /// <param name="labelColumn">The label column's header name; null for <c>label</c>, else the last column.</param>
    /// <param name="labelNames">A saved class mapping (class index → name) to use instead of deriving one.</param>
    public static CsvDataset Load(string path, string? labelColumn = null, IReadOnlyList<string>? labelNames = null)
        => Parse(DataInput.ReadMaybeGzip(path), path, labelColumn, labelNames);

    /// <summary>Parses CSV content (UTF-8, optionally gzipped); <paramref name="source"/> names it in errors.</summary>
    public static CsvDataset Parse(byte[] content, string source, string? labelColumn = null, IReadOnlyList<string>? labelNames = null)
    {
        ArgumentNullException.ThrowIfNull(content);
        var bytes = DataInput.MaybeGunzip(content, source);
        var span = bytes.AsSpan();
        if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
        return ParseText(Encoding.UTF8.GetString(span), source, labelColumn, labelNames);
    }

    /// <summary>Parses CSV text; <paramref name="source"/> names it in errors.</summary>
    public static CsvDataset ParseText(string text, string source, string? labelColumn = null, IReadOnlyList<string>? labelNames = null) =>
        ParseText(text, source, new CsvTargets(labelColumn is null ? null : [labelColumn], TargetKind.Classes, labelNames));

    /// <summary>Reads a CSV file (or gzipped CSV) whose targets <paramref name="targets"/> describes.</summary>
    public static CsvDataset LoadFor(string path, CsvTargets targets) => ParseFor(DataInput.ReadMaybeGzip(path), path, targets);

    /// <summary>Parses CSV content (UTF-8, optionally gzipped) whose targets <paramref name="targets"/> describes.</summary>
    public static CsvDataset ParseFor(byte[] content, string source, CsvTargets targets)
    {
        ArgumentNullException.ThrowIfNull(content);
        var bytes = DataInput.MaybeGunzip(content, source);
        var span = bytes.AsSpan();
        if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
        return ParseText(Encoding.UTF8.GetString(span), source, targets);
    }

    /// <summary>
    /// Parses CSV text whose target columns and kind <paramref name="targets"/> gives. With no kind, one column of numbers
    /// that are not all integers is read as values (regression, <see cref="KindInferred"/>), several columns as values,
    /// and anything else as class labels.
    /// </summary>
    public static CsvDataset ParseText(string text, string source, CsvTargets targets)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(targets);
        var reader = new CsvRecordReader(text, source);
        var fields = new List<string>();
        if (!reader.Next(fields, out _))
            throw new DataFormatException(source, "the file is empty (expected a header row and data rows)");
        var header = fields.ToArray();
        int columns = header.Length;
        CheckHeader(source, header);
        int[] labelIndices = targets.FeaturesOnly ? [] : targets.Columns is { Count: > 0 } named
            ? named.Select(c => FindLabelColumn(source, header, c)).ToArray()
            : [FindLabelColumn(source, header, null)];
        for (int a = 0; a < labelIndices.Length; a++)
            for (int b = 0; b < a; b++)
                if (labelIndices[a] == labelIndices[b])
                    throw new DataFormatException(source, $"the label column {DataFormatException.Quote(header[labelIndices[a]])} is named twice");
        if (columns - labelIndices.Length < 1)
            throw new DataFormatException(source, labelIndices.Length == 1
                ? $"the header has only the label column {DataFormatException.Quote(header[labelIndices[0]])}, no feature columns"
                : "the header has only label columns, no feature columns");
        int d = columns - labelIndices.Length;
        var isLabel = new int[columns];
        Array.Fill(isLabel, -1);
        for (int k = 0; k < labelIndices.Length; k++) isLabel[labelIndices[k]] = k;
        var slot = new int[columns];
        for (int c = 0, k = 0; c < columns; c++) slot[c] = isLabel[c] < 0 ? k++ : -1;
        if (targets.FeatureNames is { } expected) MatchFeatureNames(source, header, isLabel, expected, slot);
        var featureNames = new string[d];
        for (int c = 0; c < columns; c++) if (slot[c] >= 0) featureNames[slot[c]] = header[c];
        var rowFeatures = new float[d];

        var features = new List<float>();
        var labelStrings = labelIndices.Select(_ => new List<string>()).ToArray();
        var labelRows = new List<int>();
        while (reader.Next(fields, out int row))
        {
            if (fields.Count != columns)
                throw new DataFormatException(source, $"row {row} has {fields.Count} fields but the header has {columns} columns");
            for (int c = 0; c < columns; c++)
            {
                string f = fields[c];
                if (isLabel[c] >= 0)
                {
                    if (targets.SkipTargets) continue;
                    if (f.Length == 0)
                        throw new DataFormatException(source, $"row {row}, column {DataFormatException.Quote(header[c])}: the {(targets.Kind == TargetKind.Values ? "target" : "label")} is empty");
                    labelStrings[isLabel[c]].Add(f);
                    continue;
                }
                if (!float.TryParse(f, NumberStyles.Float, CultureInfo.InvariantCulture, out float v))
                    throw new DataFormatException(source, $"row {row}, column {DataFormatException.Quote(header[c])}: {DataFormatException.Quote(f)} is not a number");
                if (!float.IsFinite(v))
                    throw new DataFormatException(source, $"row {row}, column {DataFormatException.Quote(header[c])}: {DataFormatException.Quote(f)} is not a finite number");
                rowFeatures[slot[c]] = v;
            }
            features.AddRange(rowFeatures);
            labelRows.Add(row);
        }
        if (labelRows.Count == 0)
            throw new DataFormatException(source, "no data rows after the header");

        var labelColumns = labelIndices.Select(i => header[i]).ToArray();
        if (targets.FeaturesOnly || targets.SkipTargets)
            return new CsvDataset(source, featureNames, labelColumns, targets.LabelNames?.ToArray() ?? [], new LabeledData(features.ToArray(), new int[labelRows.Count], d),
                targets.Kind ?? TargetKind.Classes, false, labelRows.ToArray());
        var kind = targets.Kind ?? InferKind(labelStrings);
        bool inferred = targets.Kind is null && kind == TargetKind.Values && labelStrings.Length == 1;
        if (kind == TargetKind.Classes)
        {
            if (labelStrings.Length != 1)
                throw new DataFormatException(source, $"class labels come from one column, not {labelStrings.Length} ({string.Join(", ", labelColumns.Select(DataFormatException.Quote))})");
            int[] labels;
            string[] names;
            if (targets.LabelNames is { } saved)
            {
                names = saved.ToArray();
                labels = MapWithNames(source, labelColumns[0], labelStrings[0], labelRows, names);
            }
            else (labels, names) = DeriveClasses(labelStrings[0]);
            return new CsvDataset(source, featureNames, labelColumns, names, new LabeledData(features.ToArray(), labels, d), kind, inferred, labelRows.ToArray());
        }
        int t = labelStrings.Length, n = labelRows.Count;
        var values = new float[(long)n * t];
        for (int j = 0; j < t; j++)
        {
            var col = labelStrings[j];
            string quoted = DataFormatException.Quote(labelColumns[j]);
            for (int i = 0; i < n; i++)
            {
                string f = col[i];
                bool number = float.TryParse(f, NumberStyles.Float, CultureInfo.InvariantCulture, out float v);
                if (kind == TargetKind.Binary)
                {
                    if (!number || (v != 0f && v != 1f))
                        throw new DataFormatException(source, $"row {labelRows[i]}, column {quoted}: {DataFormatException.Quote(f)} is not 0 or 1 (a multi-label column holds 0 or 1)");
                }
                else if (!number)
                    throw new DataFormatException(source, $"row {labelRows[i]}, column {quoted}: the target {DataFormatException.Quote(f)} is not a number");
                else if (!float.IsFinite(v))
                    throw new DataFormatException(source, $"row {labelRows[i]}, column {quoted}: the target {DataFormatException.Quote(f)} is not a finite number");
                values[(long)i * t + j] = v;
            }
        }
        return new CsvDataset(source, featureNames, labelColumns, labelColumns, new LabeledData(features.ToArray(), values, t, d), kind, inferred, labelRows.ToArray());
    }

    /// <summary>The header row's column names.</summary>
    public static string[] ReadHeader(string path)
    {
        var bytes = DataInput.MaybeGunzip(DataInput.ReadMaybeGzip(path), path);
        var span = bytes.AsSpan();
        if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
        var reader = new CsvRecordReader(Encoding.UTF8.GetString(span), path);
        var fields = new List<string>();
        if (!reader.Next(fields, out _)) throw new DataFormatException(path, "the file is empty (expected a header row and data rows)");
        return fields.ToArray();
    }

    /// <summary>Several columns: values. One column: values when every entry is a number and some is not an integer (or not finite); else classes.</summary>
    private static TargetKind InferKind(List<string>[] labels)
    {
        if (labels.Length > 1) return TargetKind.Values;
        bool fractional = false;
        foreach (var s in labels[0])
        {
            if (TryParseIntegerLabel(s, out _)) continue;
            // a fraction, or NaN or ±Inf among numbers: a regression column (whose non-finite targets are then refused)
            if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _)) return TargetKind.Classes;
            fractional = true;
        }
        return fractional ? TargetKind.Values : TargetKind.Classes;
    }

    /// <summary>
    /// Points each feature column's <paramref name="slot"/> at its position in <paramref name="expected"/> (a model's
    /// feature names) when the non-target columns are exactly those names in some order. A file with every name and
    /// more columns keeps its positions, so the width check refuses it as before; a file missing a name is refused here.
    /// </summary>
    private static void MatchFeatureNames(string source, string[] header, int[] isLabel, IReadOnlyList<string> expected, int[] slot)
    {
        var column = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < header.Length; c++) if (isLabel[c] < 0) column[header[c]] = c;
        var missing = expected.Where(n => !column.ContainsKey(n)).ToList();
        if (missing.Count > 0)
        {
            string names = DataFormatException.QuoteList(missing, 5), wanted = DataFormatException.QuoteList([.. expected], 12);
            throw new DataFormatException(source, $"no feature column{(missing.Count == 1 ? "" : "s")} {names} (the model takes {expected.Count} feature{(expected.Count == 1 ? "" : "s")} by name: {wanted})");
        }
        if (column.Count != expected.Count) return;
        for (int k = 0; k < expected.Count; k++) slot[column[expected[k]]] = k;
    }

    private static void CheckHeader(string source, string[] header)
    {
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < header.Length; c++)
        {
            if (seen.TryGetValue(header[c], out int first))
                throw new DataFormatException(source, $"the header names column {DataFormatException.Quote(header[c])} twice (columns {first + 1} and {c + 1})");
            seen[header[c]] = c;
        }
    }

    private static int FindLabelColumn(string source, string[] header, string? labelColumn)
    {
        if (labelColumn is null)
        {
            int i = Array.IndexOf(header, "label");
            if (i >= 0) return i;
            var ci = FindIgnoreCase(header, "label");
            return ci >= 0 ? ci : header.Length - 1;
        }
        int exact = Array.IndexOf(header, labelColumn);
        if (exact >= 0) return exact;
        int loose = FindIgnoreCase(header, labelColumn);
        if (loose >= 0) return loose;
        const int Shown = 12;
        string list = string.Join(", ", header.Take(Shown).Select(DataFormatException.Quote)) + (header.Length > Shown ? $", … ({header.Length} columns)" : "");
        throw new DataFormatException(source, $"no label column named {DataFormatException.Quote(labelColumn)}; the header has {list}");
    }

    private static int FindIgnoreCase(string[] header, string name)
    {
        int found = -1;
        for (int c = 0; c < header.Length; c++)
        {
            if (string.Equals(header[c], name, StringComparison.OrdinalIgnoreCase))
            {
                if (found >= 0) return -1; // ambiguous
                found = c;
            }
        }
        return found;
    }

    /// <summary>Parses an integer label: an integer, or a float with an integral value ("3.0").</summary>
    internal static bool TryParseIntegerLabel(string s, out long value)
    {
        if (long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out value)) return true;
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)
            && double.IsFinite(d) && Math.Floor(d) == d && Math.Abs(d) <= 9007199254740992.0)
        {
            value = (long)d;
            return true;
        }
        value = 0;
        return false;
    }

    /// <summary>
    /// Derives the class mapping: sorted distinct labels (numerically when all are integers) → 0, 1, ….
    /// Returns the class index of each label and the class names.
    /// </summary>
    public static (int[] Labels, string[] Names) DeriveClasses(IReadOnlyList<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var values = new long[labels.Count];
        bool numeric = true;
        for (int i = 0; i < labels.Count && numeric; i++)
            numeric = TryParseIntegerLabel(labels[i], out values[i]);
        var result = new int[labels.Count];
        if (numeric)
        {
            var distinct = values.Distinct().Order().ToArray();
            var index = new Dictionary<long, int>(distinct.Length);
            for (int k = 0; k < distinct.Length; k++) index[distinct[k]] = k;
            for (int i = 0; i < values.Length; i++) result[i] = index[values[i]];
            return (result, distinct.Select(v => v.ToString(CultureInfo.InvariantCulture)).ToArray());
        }
        else
        {
            var distinct = labels.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
            var index = new Dictionary<string, int>(distinct.Length, StringComparer.Ordinal);
            for (int k = 0; k < distinct.Length; k++) index[distinct[k]] = k;
            for (int i = 0; i < labels.Count; i++) result[i] = index[labels[i]];
            return (result, distinct);
        }
    }

    /// <summary>
    /// Maps label strings to class indices with a saved mapping (class index → name). A label matches a name
    /// exactly, or numerically when both are integers ("3.0" matches "3"). Throws <see cref="DataFormatException"/>
    /// naming the first unknown label.
    /// </summary>
    public static int[] MapLabels(IReadOnlyList<string> labels, IReadOnlyList<string> labelNames, string source)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(labelNames);
        var rows = Enumerable.Range(0, labels.Count).ToList();
        return MapWithNames(source, null, labels, rows, labelNames.ToArray(), rowsAreIndices: true);
    }

    private static int[] MapWithNames(string source, string? labelColumn, IReadOnlyList<string> labels, List<int> rows, string[] names, bool rowsAreIndices = false)
    {
        if (names.Length == 0) throw new ArgumentException("the saved label mapping has no classes", nameof(names));
        var exact = new Dictionary<string, int>(names.Length, StringComparer.Ordinal);
        var numeric = new Dictionary<long, int>();
        for (int k = 0; k < names.Length; k++)
        {
            ArgumentNullException.ThrowIfNull(names[k], nameof(names));
            if (!exact.TryAdd(names[k], k))
                throw new ArgumentException($"the saved label mapping names class {DataFormatException.Quote(names[k])} twice", nameof(names));
            if (TryParseIntegerLabel(names[k], out long v)) numeric.TryAdd(v, k);
        }
        var result = new int[labels.Count];
        for (int i = 0; i < labels.Count; i++)
        {
            string s = labels[i];
            if (exact.TryGetValue(s, out int k) || (TryParseIntegerLabel(s, out long v) && numeric.TryGetValue(v, out k)))
            {
                result[i] = k;
                continue;
            }
            const int Shown = 12;
            string known = string.Join(", ", names.Take(Shown)) + (names.Length > Shown ? ", …" : "");
            string where = rowsAreIndices ? $"label {rows[i]}" : $"row {rows[i]}, column {DataFormatException.Quote(labelColumn ?? "label")}";
            throw new DataFormatException(source, $"{where}: {DataFormatException.Quote(s)} is not one of the {names.Length} known classes ({known})");
        }
        return result;
    }

    /// <summary>Splits CSV text into records of trimmed fields (RFC 4180 quoting), skipping blank lines.</summary>
    private sealed class CsvRecordReader(string text, string source)
    {
        private int _pos;
        private int _line = 1;
        private readonly StringBuilder _sb = new();

        /// <summary>Reads the next non-blank record; <paramref name="row"/> is the line it starts on.</summary>
        public bool Next(List<string> fields, out int row)
        {
            fields.Clear();
            while (true)
            {
                // Skip blank lines (only whitespace).
                int p = _pos;
                while (p < text.Length && (text[p] == ' ' || text[p] == '\t')) p++;
                if (p >= text.Length) { _pos = p; row = _line; return false; }
                if (text[p] == '\n' || text[p] == '\r')
                {
                    p += text[p] == '\r' && p + 1 < text.Length && text[p + 1] == '\n' ? 2 : 1;
                    _pos = p;
                    _line++;
                    continue;
                }
                break;
            }
            row = _line;
            while (true)
            {
                fields.Add(ReadField(row, out bool endOfRecord));
                if (endOfRecord) return true;
            }
        }

        private string ReadField(int row, out bool endOfRecord)
        {
            int p = _pos;
            while (p < text.Length && (text[p] == ' ' || text[p] == '\t')) p++;
            string value;
            if (p < text.Length && text[p] == '"')
            {
                _sb.Clear();
                p++;
                while (true)
                {
                    if (p >= text.Length)
                        throw new DataFormatException(source, $"row {row}: a quoted field is never closed");
                    char c = text[p];
                    if (c == '"')
                    {
                        if (p + 1 < text.Length && text[p + 1] == '"') { _sb.Append('"'); p += 2; continue; }
                        p++;
                        break;
                    }
                    if (c == '\n') _line++;
                    else if (c == '\r' && !(p + 1 < text.Length && text[p + 1] == '\n')) _line++;
                    _sb.Append(c);
                    p++;
                }
                while (p < text.Length && (text[p] == ' ' || text[p] == '\t')) p++;
                if (p < text.Length && text[p] != ',' && text[p] != '\n' && text[p] != '\r')
                    throw new DataFormatException(source, $"row {_line}: unexpected {DataFormatException.Quote(text[p].ToString())} after a closing quote");
                value = _sb.ToString().Trim();
            }
            else
            {
                int start = p;
                while (p < text.Length && text[p] != ',' && text[p] != '\n' && text[p] != '\r') p++;
                value = text.AsSpan(start, p - start).Trim().ToString();
            }
            if (p >= text.Length) { endOfRecord = true; _pos = p; return value; }
            if (text[p] == ',') { endOfRecord = false; _pos = p + 1; return value; }
            // Line end.
            p += text[p] == '\r' && p + 1 < text.Length && text[p + 1] == '\n' ? 2 : 1;
            _line++;
            endOfRecord = true;
            _pos = p;
            return value;
        }
    }
}
