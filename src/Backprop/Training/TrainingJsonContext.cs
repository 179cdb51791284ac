using System.Text.Json.Serialization;

namespace Backprop.Training;

/// <summary>
/// The JSON of model files and checkpoints (__metadata__.architecture and __metadata__.checkpoint), generated at compile
/// time so that trimming and Native AOT keep it without reflection. The options are the ones the files were always
/// written with (snake_case names, NaN and ±Infinity as named literals), so old files load and new ones are the same
/// bytes; <see cref="ModelFile.JsonOptions"/> is this context's options.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(Architecture))]
[JsonSerializable(typeof(Checkpoint.Progress))]
internal sealed partial class TrainingJsonContext : JsonSerializerContext;
