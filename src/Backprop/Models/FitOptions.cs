using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Models;

/// <summary>
/// How <see cref="Model{T}.Fit(float[,], int[], FitOptions?, CancellationToken)"/> trains: epochs, batches, the optimizer
/// and its schedule, the seed, the threads, the validation split, checkpoints and progress. The defaults are the
/// library's (<see cref="TrainOptions"/>), except the batch size: 32 suits the small tables arrays usually hold.
/// </summary>
/// <example>
/// <code>
/// var options = new FitOptions { Epochs = 100, BatchSize = 16, LearningRate = 0.01, ValidationSplit = 0.15, Patience = 10 };
/// </code>
/// </example>
public sealed record FitOptions
{
    /// <summary>Epochs to train (passes over the training rows); a resumed fit counts the checkpoint's.</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Rows per step (the last batch of an epoch may be smaller).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>The optimizer's name: sgd, adam, adamw or rmsprop (see <see cref="OptimizerRegistry"/>).</summary>
    public string Optimizer { get; init; } = "adam";

    /// <summary>The learning rate (the peak of a schedule).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>SGD's momentum.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Nesterov momentum (SGD).</summary>
    public bool Nesterov { get; init; }

    /// <summary>Weight decay (L2, or decoupled for AdamW); null: the optimizer's default.</summary>
    public double? WeightDecay { get; init; }

    /// <summary>The learning-rate schedule over the run: constant, step or cosine.</summary>
    public string Schedule { get; init; } = "constant";

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Clips the gradients to this global L2 norm; 0: off.</summary>
    public double ClipNorm { get; init; }

    /// <summary>
    /// Stops after this many epochs without a better validation loss and keeps the best epoch's weights; 0: off. Needs a
    /// validation split.
    /// </summary>
    public int Patience { get; init; }

    /// <summary>Seeds the validation split, the batch order and dropout's masks (the weights are seeded by <see cref="ModelBuilder.Seed"/>).</summary>
    public int Seed { get; init; }

    /// <summary>Worker threads for the kernels when <see cref="Context"/> is null; 0: <see cref="ComputeContext.Default"/> (all cores).</summary>
    public int Threads { get; init; }

    /// <summary>What the kernels run on (its threads); null: one made for <see cref="Threads"/>, or the default.</summary>
    public ComputeContext? Context { get; init; }

    /// <summary>
    /// The share of the rows held out for validation (stratified for classification), in [0, 1). Null: none for arrays,
    /// and 15% for a CSV file, as the CLI does (which also holds out 20% for the test metrics).
    /// </summary>
    public double? ValidationSplit { get; init; }

    /// <summary>
    /// Writes a checkpoint here after every epoch (atomically: the previous one stays valid until the next is complete).
    /// A fit stopped by cancellation leaves the checkpoint of its last complete epoch, which <see cref="ResumeFrom"/>
    /// (or <c>backprop train --resume</c>, for a fit on a file) continues.
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>
    /// Continues the fit that wrote this checkpoint, on the same data and options (its weights and optimizer state, after
    /// its last complete epoch); the result is the uninterrupted fit's. Checkpointing continues to <see cref="CheckpointPath"/>.
    /// </summary>
    public string? ResumeFrom { get; init; }

    /// <summary>For a CSV file: the label column(s), comma-separated; null: "label", else the last column.</summary>
    public string? LabelColumn { get; init; }

    /// <summary>The loss's name; null: the task's (cross_entropy, mse, bce_with_logits). Regression also takes l1 and huber.</summary>
    public string? Loss { get; init; }

    /// <summary>The huber loss's δ.</summary>
    public double HuberDelta { get; init; } = 1.0;

    /// <summary>"balanced" or one weight per class, comma-separated (weighted cross-entropy); null: none.</summary>
    public string? ClassWeights { get; init; }

    /// <summary>Multi-label: the positive term's weight, one for all labels or one per label, comma-separated; null: none.</summary>
    public string? PosWeight { get; init; }

    /// <summary>
    /// Standardises the features with the training rows' mean and standard deviation when the model has no
    /// standardizer yet (later fits and predictions reuse it). Regression targets are always standardised so.
    /// </summary>
    public bool Standardize { get; init; } = true;

    /// <summary>Hears every finished epoch, on the training thread.</summary>
    public IProgress<EpochReport>? Progress { get; init; }

    /// <summary>Called after every finished epoch, on the training thread (a callback in place of <see cref="Progress"/>).</summary>
    public Action<EpochReport>? OnEpoch { get; init; }

    /// <summary>Hears every step (enough for a progress bar), on the training thread.</summary>
    public IProgress<BatchProgress>? BatchProgress { get; init; }

    /// <summary>The library's training options these options name.</summary>
    public TrainOptions ToTrainOptions() => new()
    {
        Epochs = Epochs, BatchSize = BatchSize, Optimizer = Optimizer, LearningRate = LearningRate, Momentum = Momentum, Nesterov = Nesterov,
        WeightDecay = WeightDecay, Schedule = Schedule, WarmupSteps = WarmupSteps, ClipNorm = ClipNorm, Patience = Patience, Seed = Seed,
    };
}
