using System.Text.Json.Serialization;
using Backprop.Cli.Commands;

namespace Backprop.Cli;

/// <summary>
/// The JSON files the CLI writes with <see cref="System.Text.Json.JsonSerializer"/> (history.json, output-gradients.json),
/// generated at compile time: Native AOT keeps no reflection-based serializer. The options are a model file's
/// (snake_case, NaN and ±Infinity as named literals: a diverged epoch's loss is NaN), so the files are as they were.
/// The --json result lines are written with Utf8JsonWriter and need none of this.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(TrainingPlots.History))]
[JsonSerializable(typeof(IReadOnlyList<DiagnosePlots.Series>))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
