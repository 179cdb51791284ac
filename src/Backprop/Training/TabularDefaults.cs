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
    public const int Hidden = 100;
    public const int MinEpochs = 20, MaxEpochs = 1000;

    public static int BatchSize(int trainRows) => Math.Clamp(trainRows / 16, 16, 64);
    public const double LearningRate = 3e-3;

    public static int Epochs(int trainRows, int batchSize)
    {
        int batches = Math.Max(1, (trainRows + batchSize - 1) / batchSize);
        return Math.Clamp((StepBudget + batches - 1) / batches, MinEpochs, MaxEpochs);
    }

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
