
namespace Backprop.Training;

/// <summary>What a caller can do about a diverged run.</summary>
public enum DivergenceRemedy
{
    /// <summary>Nothing specific: e.g. the input itself holds a non-finite value.</summary>
    None,
    /// <summary>A smaller learning rate, or clipping the gradients' global norm.</summary>
    LowerLearningRateOrClip,
}

/// <summary>A setting of a <see cref="TrainingJob"/> that cannot be trained with, e.g. a batch size of 0.</summary>
public sealed class InvalidTrainingSettingException(TrainingSetting setting, string value, string problem)
    : ArgumentException($"{setting} {value}: {problem}")
{
    /// <summary>The setting that cannot be trained with.</summary>
    public TrainingSetting Setting { get; } = setting;
    /// <summary>The value given, as text.</summary>
    public string Value { get; } = value;
    /// <summary>What is wrong with it, in words that name no setting (e.g. "must be at least 1").</summary>
    public string Problem { get; } = problem;
}

/// <summary>Why a checkpoint and a resumed run disagree.</summary>
public enum CheckpointMismatchReason
{
    /// <summary>The setting fixes what the run is (the network, the optimizer, the split and batch order).</summary>
    Fixed,
    /// <summary>The checkpoint's cosine learning rate is a function of the run's total epochs.</summary>
    CosineSpansEpochs,
    /// <summary>The training rows differ from the checkpoint's (the values are the two data fingerprints).</summary>
    OtherData,
}

/// <summary>
/// A resumed run whose setting contradicts the checkpoint it resumes, e.g. another seed. Carries the setting, the
/// checkpoint's value and the given one, so that a caller can word it in its own terms (a CLI: in flags).
/// </summary>
public sealed class CheckpointMismatchException(TrainingSetting setting, string checkpointValue, string givenValue, CheckpointMismatchReason reason)
    : Exception(reason switch
    {
        CheckpointMismatchReason.OtherData => $"the checkpoint was trained on other data (fingerprint {checkpointValue}, this data gives {givenValue})",
        CheckpointMismatchReason.CosineSpansEpochs => $"the checkpoint's cosine learning rate spans {checkpointValue} epochs, not {givenValue}",
        _ => $"{setting} {givenValue} contradicts the checkpoint, which was trained with {setting} {checkpointValue}",
    })
{
    /// <summary>The setting on which the run and the checkpoint disagree (<see cref="TrainingSetting.Data"/> for other training rows).</summary>
    public TrainingSetting Setting { get; } = setting;
    /// <summary>The checkpoint's value of the setting, as text (for other data, its data fingerprint).</summary>
    public string CheckpointValue { get; } = checkpointValue;
    /// <summary>The resumed run's value of the setting, as text (for other data, this data's fingerprint).</summary>
    public string GivenValue { get; } = givenValue;
    /// <summary>Why the two values cannot both hold, which decides how the disagreement is worded.</summary>
    public CheckpointMismatchReason Reason { get; } = reason;
}
