using System.Text.Json.Serialization;

namespace Backprop.Data;

/// <summary>
/// The JSON that data metadata writes through <see cref="System.Text.Json.JsonSerializer"/> (label names and label
/// columns as string arrays), generated at compile time so that trimming and Native AOT keep it without reflection.
/// Default options, as the reflection-based serializer wrote them: the files stay byte-for-byte the same.
/// </summary>
[JsonSerializable(typeof(string[]))]
internal sealed partial class DataJsonContext : JsonSerializerContext;
