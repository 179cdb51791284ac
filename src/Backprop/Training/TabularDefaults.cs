using System.Globalization;

namespace Backprop.Training;

/// <summary>
/// The settings a CSV run takes when not told otherwise, sized to its training split: a step budget rather than an
/// epoch count, a batch and learning rate suited to a few hundred rows, a hidden layer as wide as scikit-learn's
/// MLP default, and early stopping on the validation split that restores the best weights. MNIST keeps its own settings.
/// </summary>
public static class TabularDefaults
{
    /// <summary>The optimizer steps a run aims at, whatever the data's size.</summary>
    public const int StepBudget = 3000;
    /// <summary>The width of the one hidden layer, as scikit-learn's MLPClassifier's default (100,).</summary>
    public const int Hidden = 100;
    /// <summary>The fewest epochs the step budget is spread over (a large split still gets this many passes).</summary>
    public const int MinEpochs = 20;
    /// <summary>The most epochs the step budget is spread over (a tiny split stops here).</summary>
    public const int MaxEpochs = 1000;

    /// <summary>The batch size for <paramref name="trainRows"/> training rows: a sixteenth of them, clamped to [16, 64].</summary>
    public static int BatchSize(int trainRows) => Math.Clamp(trainRows / 16, 16, 64);
    /// <summary>The learning rate of the default optimizer (Adam) for a few hundred rows.</summary>
    public const double LearningRate = 3e-3;

    /// <summary>The epochs that reach <see cref="StepBudget"/> optimizer steps at <paramref name="batchSize"/> rows per step
    /// over <paramref name="trainRows"/> rows, clamped to [<see cref="MinEpochs"/>, <see cref="MaxEpochs"/>].</summary>
    public static int Epochs(int trainRows, int batchSize)
    {
        int batches = Math.Max(1, (trainRows + batchSize - 1) / batchSize);
        return Math.Clamp((StepBudget + batches - 1) / batches, MinEpochs, MaxEpochs);
    }

    /// <summary>The early-stopping patience for a run of <paramref name="epochs"/> epochs: a tenth of them, at least 10.</summary>
    public static int Patience(int epochs) => Math.Max(10, epochs / 10);

    /// <summary>
    /// <paramref name="job"/> with the settings not in <paramref name="given"/> sized to <paramref name="trainRows"/>,
    /// and the sentence that says which were chosen (null when none was).
    /// </summary>
    public static (TrainingJob Job, string? Said) Apply(TrainingJob job, int trainRows, int features, int outputs, IReadOnlyCollection<TrainingSetting> given)
    {
        var o = job.Options;
        var said = new List<string>();
        string N(double v) => v.ToString(CultureInfo.InvariantCulture);
        if (!given.Contains(TrainingSetting.BatchSize)) { o = o with { BatchSize = BatchSize(trainRows) }; said.Add($"batch {o.BatchSize}"); }
        if (!given.Contains(TrainingSetting.LearningRate)) { o = o with { LearningRate = LearningRate }; said.Add($"lr {N(o.LearningRate)}"); }
        if (!given.Contains(TrainingSetting.Epochs))
        {
            o = o with { Epochs = Epochs(trainRows, o.BatchSize) };
            said.Add($"up to {o.Epochs} epochs (a budget of {StepBudget} steps)");
        }
        // early stopping belongs to the step budget: a run given its epochs runs them all unless given a patience too
        if (!given.Contains(TrainingSetting.Patience) && !given.Contains(TrainingSetting.Epochs))
        {
            o = o with { Patience = Patience(o.Epochs) };
            said.Add($"early stopping after {o.Patience} epochs without a better validation loss");
        }
        int[]? layers = job.Layers;
        if (!given.Contains(TrainingSetting.Layers) && layers is null && job.Architecture is null)
        {
            layers = [features, Hidden, outputs];
            said.Add($"layers {string.Join(",", layers)}");
        }
        if (said.Count == 0) return (job, null);
        return (job with { Options = o, Layers = layers },
            $"defaults for {trainRows} training rows: {string.Join(", ", said)}{(o.Patience > 0 ? "; the best weights on the validation split are kept" : "")}");
    }
}
