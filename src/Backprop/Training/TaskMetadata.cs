using Backprop.Data;
using Backprop.IO;

namespace Backprop.Training;

/// <summary>What a model file records of its task, beside the label names and the feature standardisation.</summary>
/// <param name="Task">The task the model was trained for, which decides how its outputs are read.</param>
/// <param name="LabelColumns">The CSV columns the targets came from; null for a model recorded without them (the columns are then the default ones).</param>
/// <param name="TargetScaling">The standardisation of regression targets: predictions are mapped back with it.</param>
public sealed record TaskMetadata(TrainingTask Task, string[]? LabelColumns, Standardizer? TargetScaling)
{
    /// <summary>The metadata key of the task's name.</summary>
    public const string TaskKey = "task";
    /// <summary>The metadata key of the target columns, a JSON array of strings.</summary>
    public const string LabelColumnsKey = "label_columns";
    /// <summary>The prefix of the metadata keys that hold <see cref="TargetScaling"/>.</summary>
    public const string TargetScalingPrefix = "target_scaling";

    /// <summary>The metadata entries of a model trained on <paramref name="task"/> from <paramref name="labelColumns"/>.</summary>
    public static Dictionary<string, string> Write(TrainingTask task, IReadOnlyList<string> labelColumns, Standardizer? targetScaling)
    {
        var meta = new Dictionary<string, string> { [TaskKey] = task.Name, [LabelColumnsKey] = DataMetadata.StringsToJson(labelColumns) };
        targetScaling?.WriteMetadata(meta, TargetScalingPrefix);
        return meta;
    }

    /// <summary>A model file's task facts; a file from before tasks were recorded is a classification on the default label column.</summary>
    public static TaskMetadata Read(IReadOnlyDictionary<string, string> metadata, string source)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var task = TrainingTask.Classification;
        if (metadata.TryGetValue(TaskKey, out var name))
            task = TrainingTask.Find(name) ?? throw new DataFormatException(source, $"metadata 'task' is '{name}', not one of {TrainingTask.NamesText}");
        var columns = DataMetadata.ReadLabelNames(metadata, source, LabelColumnsKey);
        var scaling = Standardizer.ReadMetadata(metadata, source, TargetScalingPrefix);
        if (task.Targets != TargetKind.Classes && columns is null)
            throw new DataFormatException(source, $"metadata '{LabelColumnsKey}' is missing: a {task.Name} model names its target columns");
        return new TaskMetadata(task, columns, scaling);
    }

    /// <summary>How a CSV file's targets are read for this model: its columns by name, its kind, its class names.</summary>
    public CsvTargets Targets(IReadOnlyList<string> labelNames) =>
        new(LabelColumns, Task.Targets, Task.Targets == TargetKind.Classes ? labelNames : null);

    /// <summary>The objective evaluation measures with: the task's default loss, unweighted.</summary>
    public TrainingObjective Objective => new(Task, Task.DefaultLoss, null, TargetScaling);
}
