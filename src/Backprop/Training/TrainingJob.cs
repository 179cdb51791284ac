using System.Globalization;
using Backprop.Ops;

namespace Backprop.Training;

/// <summary>One setting of a <see cref="TrainingJob"/>: what validation errors and checkpoint mismatches name (a CLI maps it to its flag).</summary>
public enum TrainingSetting
{
    /// <summary>The data: a directory of MNIST IDX files or a CSV file (<see cref="TrainingJob.Data"/>).</summary>
    Data,
    /// <summary>The CSV label column or columns (<see cref="TrainingJob.LabelColumn"/>).</summary>
    LabelColumn,
    /// <summary>The layer sizes, input first (<see cref="TrainingJob.Layers"/>).</summary>
    Layers,
    /// <summary>The hidden activation (<see cref="TrainingJob.Activation"/>).</summary>
    Activation,
    /// <summary>The weight initialisation (<see cref="TrainingJob.Init"/>).</summary>
    Init,
    /// <summary>The element type trained in, float32 or float64 (<see cref="TrainingJob.Precision"/>).</summary>
    Precision,
    /// <summary>The optimizer's name (<see cref="TrainOptions.Optimizer"/>).</summary>
    Optimizer,
    /// <summary>The base learning rate (<see cref="TrainOptions.LearningRate"/>).</summary>
    LearningRate,
    /// <summary>SGD's momentum (<see cref="TrainOptions.Momentum"/>).</summary>
    Momentum,
    /// <summary>Whether SGD's momentum is Nesterov's (<see cref="TrainOptions.Nesterov"/>).</summary>
    Nesterov,
    /// <summary>The weight decay (<see cref="TrainOptions.WeightDecay"/>).</summary>
    WeightDecay,
    /// <summary>The learning-rate schedule's name (<see cref="TrainOptions.Schedule"/>).</summary>
    Schedule,
    /// <summary>The steps of linear learning-rate warm-up (<see cref="TrainOptions.WarmupSteps"/>).</summary>
    WarmupSteps,
    /// <summary>The step schedule's period in epochs (<see cref="TrainOptions.StepSizeEpochs"/>).</summary>
    StepSizeEpochs,
    /// <summary>The step schedule's decay factor (<see cref="TrainOptions.Gamma"/>).</summary>
    Gamma,
    /// <summary>The gradients' global-norm clip (<see cref="TrainOptions.ClipNorm"/>).</summary>
    ClipNorm,
    /// <summary>The early-stopping patience in epochs (<see cref="TrainOptions.Patience"/>).</summary>
    Patience,
    /// <summary>The seed of the initial weights, the split and the batch order (<see cref="TrainOptions.Seed"/>).</summary>
    Seed,
    /// <summary>The rows per optimizer step (<see cref="TrainOptions.BatchSize"/>).</summary>
    BatchSize,
    /// <summary>The passes over the training split (<see cref="TrainOptions.Epochs"/>).</summary>
    Epochs,
    /// <summary>The whole network as an architecture spec (<see cref="TrainingJob.Architecture"/>).</summary>
    Architecture,
    /// <summary>The dropout probability after each hidden activation (<see cref="TrainingJob.Dropout"/>).</summary>
    Dropout,
    /// <summary>The normalisation before each hidden activation (<see cref="TrainingJob.Norm"/>).</summary>
    Norm,
    /// <summary>The task: classification, regression or multilabel (<see cref="TrainingJob.Task"/>).</summary>
    Task,
    /// <summary>The loss's name (<see cref="TrainingJob.Loss"/>).</summary>
    Loss,
    /// <summary>The huber loss's δ (<see cref="TrainingJob.HuberDelta"/>).</summary>
    HuberDelta,
    /// <summary>The cross-entropy's class weights (<see cref="TrainingJob.ClassWeights"/>).</summary>
    ClassWeights,
    /// <summary>The bce_with_logits positive-term weights (<see cref="TrainingJob.PosWeight"/>).</summary>
    PosWeight,
}

/// <summary>
/// The whole configuration of a training run: the data, the network, the optimizer and the schedule. A checkpoint
/// records it (resolved: the layer sizes and the weight decay filled in), so that a resumed run continues with the
/// same configuration without being told it again (see <see cref="Continue"/>).
/// </summary>
public sealed record TrainingJob
{
    /// <summary>A directory of MNIST IDX files, or a CSV file (see <see cref="Data.DataLoading.Prepare"/>). A run records its full path.</summary>
    public string Data { get; init; } = "data/mnist";
    /// <summary>The CSV label column; null: "label", else the last column. A run records the column it resolved.</summary>
    public string? LabelColumn { get; init; }
    /// <summary>Layer sizes, input first; null: 784,512,256,10 for MNIST, features,64,classes for CSV (or a resumed checkpoint's).</summary>
    public int[]? Layers { get; init; }
    /// <summary>The hidden activation (the output layer is linear; the loss is the task's, see <see cref="Task"/>).</summary>
    public string Activation { get; init; } = "relu";
    /// <summary>
    /// The whole network as an <see cref="Nn.ArchitectureSpec"/> string (e.g. "784-512:relu:ln-256:relu:drop0.2-10"), in
    /// place of <see cref="Layers"/>, <see cref="Activation"/>, <see cref="Dropout"/> and <see cref="Norm"/>; null: those.
    /// A run records the canonical spec of any network that is not a plain MLP.
    /// </summary>
    public string? Architecture { get; init; }
    /// <summary>Dropout probability after each hidden activation; 0: none.</summary>
    public double Dropout { get; init; }
    /// <summary>"layernorm" or "batchnorm" before each hidden activation; null: none.</summary>
    public string? Norm { get; init; }
    /// <summary>"default" or an <see cref="InitKind"/> name (see <see cref="Initializers.Parse"/>).</summary>
    public string Init { get; init; } = "default";
    /// <summary>"float32" or "float64": the element type the run trains in.</summary>
    public string Precision { get; init; } = "float32";
    /// <summary>The optimizer, schedule, batch, epochs, seed and early stopping (see <see cref="TrainOptions"/>).</summary>
    public TrainOptions Options { get; init; } = new();
    /// <summary>"classification", "regression" or "multilabel" (see <see cref="TrainingTask"/>); null: from the data (a run records the one it resolved).</summary>
    public string? Task { get; init; }
    /// <summary>The loss's name; null: the task's default (cross_entropy, mse, bce_with_logits).</summary>
    public string? Loss { get; init; }
    /// <summary>The huber loss's δ.</summary>
    public double HuberDelta { get; init; } = 1.0;
    /// <summary>"balanced" or one non-negative weight per class, comma-separated (weighted cross-entropy); null: none.</summary>
    public string? ClassWeights { get; init; }
    /// <summary>One positive-term weight for every label, or one per label, comma-separated (bce_with_logits' pos_weight); null: none.</summary>
    public string? PosWeight { get; init; }

    /// <summary>The label columns <see cref="LabelColumn"/> names (comma-separated), or null for the default.</summary>
    public string[]? LabelColumns => LabelColumn?.Split(',', StringSplitOptions.TrimEntries);

    /// <summary>Two jobs are equal when every setting is (the layer sizes compared by value, not by array).</summary>
    public bool Equals(TrainingJob? other) =>
        other is not null && Enum.GetValues<TrainingSetting>().All(s => Format(s) == other.Format(s));

    /// <summary>A hash of every setting's text, consistent with <see cref="Equals(TrainingJob?)"/>.</summary>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var s in Enum.GetValues<TrainingSetting>()) hash.Add(Format(s));
        return hash.ToHashCode();
    }

    /// <summary>The precision name of an element type: float32 or float64.</summary>
    public static string PrecisionOf<T>() => typeof(T) == typeof(double) ? "float64" : typeof(T) == typeof(float) ? "float32" : typeof(T).Name.ToLowerInvariant();

    /// <summary>Throws <see cref="InvalidTrainingSettingException"/> for the first setting that cannot be trained with.</summary>
    public void Validate(OptimizerRegistry? optimizers = null, ActivationRegistry? activations = null)
    {
        var o = Options;
        optimizers ??= OptimizerRegistry.Default;
        activations ??= ActivationRegistry.Default;
        if (o.BatchSize <= 0) throw Invalid(TrainingSetting.BatchSize, "the batch size must be at least 1");
        if (o.Epochs <= 0) throw Invalid(TrainingSetting.Epochs, "must be at least 1");
        if (!(o.LearningRate > 0) || !double.IsFinite(o.LearningRate)) throw Invalid(TrainingSetting.LearningRate, "must be a positive number");
        if (o.Patience < 0) throw Invalid(TrainingSetting.Patience, "must be 0 (off) or more");
        if (o.ClipNorm < 0) throw Invalid(TrainingSetting.ClipNorm, "must be 0 (off) or positive");
        if (!(o.Momentum >= 0 && o.Momentum < 1)) throw Invalid(TrainingSetting.Momentum, "must be in [0, 1)");
        if (o.WeightDecay is double wd && (!(wd >= 0) || !double.IsFinite(wd))) throw Invalid(TrainingSetting.WeightDecay, "must be 0 or positive");
        if (o.WarmupSteps < 0) throw Invalid(TrainingSetting.WarmupSteps, "must be 0 (off) or more steps");
        if (!optimizers.Contains(o.Optimizer)) throw Invalid(TrainingSetting.Optimizer, $"expected {optimizers.NamesText()}");
        if (!LrSchedule.Kinds.Contains(o.Schedule))
            throw Invalid(TrainingSetting.Schedule, $"expected {string.Join(", ", LrSchedule.Kinds[..^1])} or {LrSchedule.Kinds[^1]}");
        if (activations.Find(Activation) is not { IsHiddenChoice: true })
            throw Invalid(TrainingSetting.Activation, $"expected one of {string.Join(", ", activations.HiddenNames)}");
        try { Initializers.Parse(Init); }
        catch (ArgumentException e) { throw new InvalidTrainingSettingException(TrainingSetting.Init, Init, e.Message); }
        if (Precision is not ("float32" or "float64")) throw Invalid(TrainingSetting.Precision, "expected float32 or float64");
        if (!(Dropout >= 0 && Dropout < 1)) throw Invalid(TrainingSetting.Dropout, "must be in [0, 1): the probability of dropping a unit");
        if (Norm is not (null or "layernorm" or "batchnorm")) throw Invalid(TrainingSetting.Norm, "expected layernorm or batchnorm");
        if (Architecture is not null)
        {
            if (Layers is not null || Dropout > 0 || Norm is not null)
                throw Invalid(TrainingSetting.Architecture, "describes the whole network: give it without layers, dropout or norm");
            try { Nn.ArchitectureSpec.Parse(Architecture, new Nn.Catalog(activations, Ops.LossRegistry.Default, Nn.LayerKindRegistry.Default)); }
            catch (Nn.ArchitectureSpecException e) { throw new InvalidTrainingSettingException(TrainingSetting.Architecture, Architecture, e.Message); }
        }
        if (Task is not null && TrainingTask.Find(Task) is null) throw Invalid(TrainingSetting.Task, $"expected {TrainingTask.NamesText}");
        if (Loss is not null)
        {
            var losses = (Task is null ? TrainingTask.All.AsEnumerable() : [TrainingTask.Find(Task)!]).SelectMany(t => t.Losses).Distinct().ToArray();
            if (!losses.Any(l => l.Name == Loss))
                throw Invalid(TrainingSetting.Loss, $"expected {string.Join(", ", losses.Select(l => l.Name))}{(Task is null ? "" : $" for {Task}")}");
        }
        if (!(HuberDelta > 0) || !double.IsFinite(HuberDelta)) throw Invalid(TrainingSetting.HuberDelta, "must be a positive number");
        if (ClassWeights is not null && ClassWeights != "balanced") ParseWeights(TrainingSetting.ClassWeights, ClassWeights, positive: false);
        if (PosWeight is not null) ParseWeights(TrainingSetting.PosWeight, PosWeight, positive: true);
        if (Layers is { } sizes)
        {
            if (sizes.Length < 2) throw Invalid(TrainingSetting.Layers, "needs at least an input and an output size");
            foreach (int s in sizes) if (s <= 0) throw Invalid(TrainingSetting.Layers, $"'{s}' is not a positive integer");
        }
    }

    private InvalidTrainingSettingException Invalid(TrainingSetting s, string problem) => new(s, Format(s), problem);

    /// <summary>Comma-separated finite weights, each ≥ 0 (or &gt; 0 with <paramref name="positive"/>).</summary>
    internal double[] ParseWeights(TrainingSetting setting, string text, bool positive)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var w = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out w[i]) || !double.IsFinite(w[i]))
                throw Invalid(setting, $"'{parts[i]}' is not a number");
            if (w[i] < 0 || (positive && w[i] == 0))
                throw Invalid(setting, $"the weight {parts[i]} is {(w[i] < 0 ? "negative" : "zero")}; weights must be {(positive ? "positive" : "0 or more")}");
        }
        if (!positive && w.All(x => x == 0)) throw Invalid(setting, "every weight is 0: nothing would be learned");
        return w;
    }

    /// <summary>The value of one setting as text, as it would be written on a command line (layers as "784,256,10").</summary>
    public string Format(TrainingSetting setting)
    {
        var o = Options;
        return setting switch
        {
            TrainingSetting.Data => Data,
            TrainingSetting.LabelColumn => LabelColumn ?? "(default)",
            TrainingSetting.Layers => Layers is null ? "(default)" : string.Join(",", Layers),
            TrainingSetting.Activation => Activation,
            TrainingSetting.Init => Init,
            TrainingSetting.Precision => Precision,
            TrainingSetting.Optimizer => o.Optimizer,
            TrainingSetting.LearningRate => Number(o.LearningRate),
            TrainingSetting.Momentum => Number(o.Momentum),
            TrainingSetting.Nesterov => o.Nesterov ? "true" : "false",
            TrainingSetting.WeightDecay => o.WeightDecay is double wd ? Number(wd) : "(default)",
            TrainingSetting.Schedule => o.Schedule,
            TrainingSetting.WarmupSteps => o.WarmupSteps.ToString(CultureInfo.InvariantCulture),
            TrainingSetting.StepSizeEpochs => o.StepSizeEpochs.ToString(CultureInfo.InvariantCulture),
            TrainingSetting.Gamma => Number(o.Gamma),
            TrainingSetting.ClipNorm => Number(o.ClipNorm),
            TrainingSetting.Patience => o.Patience.ToString(CultureInfo.InvariantCulture),
            TrainingSetting.Seed => o.Seed.ToString(CultureInfo.InvariantCulture),
            TrainingSetting.BatchSize => o.BatchSize.ToString(CultureInfo.InvariantCulture),
            TrainingSetting.Epochs => o.Epochs.ToString(CultureInfo.InvariantCulture),
            TrainingSetting.Architecture => Architecture ?? "(none)",
            TrainingSetting.Dropout => Number(Dropout),
            TrainingSetting.Norm => Norm ?? "(none)",
            TrainingSetting.Task => Task ?? "(from the data)",
            TrainingSetting.Loss => Loss ?? "(the task's)",
            TrainingSetting.HuberDelta => Number(HuberDelta),
            TrainingSetting.ClassWeights => ClassWeights ?? "(none)",
            TrainingSetting.PosWeight => PosWeight ?? "(none)",
            _ => throw new ArgumentOutOfRangeException(nameof(setting)),
        };
    }

    private static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>This job with one setting taken from <paramref name="from"/>.</summary>
    public TrainingJob With(TrainingSetting setting, TrainingJob from)
    {
        var o = Options;
        var f = from.Options;
        return setting switch
        {
            TrainingSetting.Data => this with { Data = from.Data },
            TrainingSetting.LabelColumn => this with { LabelColumn = from.LabelColumn },
            TrainingSetting.Layers => this with { Layers = from.Layers },
            TrainingSetting.Activation => this with { Activation = from.Activation },
            TrainingSetting.Init => this with { Init = from.Init },
            TrainingSetting.Precision => this with { Precision = from.Precision },
            TrainingSetting.Optimizer => this with { Options = o with { Optimizer = f.Optimizer } },
            TrainingSetting.LearningRate => this with { Options = o with { LearningRate = f.LearningRate } },
            TrainingSetting.Momentum => this with { Options = o with { Momentum = f.Momentum } },
            TrainingSetting.Nesterov => this with { Options = o with { Nesterov = f.Nesterov } },
            TrainingSetting.WeightDecay => this with { Options = o with { WeightDecay = f.WeightDecay } },
            TrainingSetting.Schedule => this with { Options = o with { Schedule = f.Schedule } },
            TrainingSetting.WarmupSteps => this with { Options = o with { WarmupSteps = f.WarmupSteps } },
            TrainingSetting.StepSizeEpochs => this with { Options = o with { StepSizeEpochs = f.StepSizeEpochs } },
            TrainingSetting.Gamma => this with { Options = o with { Gamma = f.Gamma } },
            TrainingSetting.ClipNorm => this with { Options = o with { ClipNorm = f.ClipNorm } },
            TrainingSetting.Patience => this with { Options = o with { Patience = f.Patience } },
            TrainingSetting.Seed => this with { Options = o with { Seed = f.Seed } },
            TrainingSetting.BatchSize => this with { Options = o with { BatchSize = f.BatchSize } },
            TrainingSetting.Epochs => this with { Options = o with { Epochs = f.Epochs } },
            TrainingSetting.Architecture => this with { Architecture = from.Architecture },
            TrainingSetting.Dropout => this with { Dropout = from.Dropout },
            TrainingSetting.Norm => this with { Norm = from.Norm },
            TrainingSetting.Task => this with { Task = from.Task },
            TrainingSetting.Loss => this with { Loss = from.Loss },
            TrainingSetting.HuberDelta => this with { HuberDelta = from.HuberDelta },
            TrainingSetting.ClassWeights => this with { ClassWeights = from.ClassWeights },
            TrainingSetting.PosWeight => this with { PosWeight = from.PosWeight },
            _ => throw new ArgumentOutOfRangeException(nameof(setting)),
        };
    }

    /// <summary>
    /// Whether a resumed run may change <paramref name="setting"/> from this (recorded) job's value. The data path may
    /// move (the checkpoint's fingerprint of the training rows still has to match); the learning rate, clipping and
    /// patience are how one recovers from a diverged or stalled run; the epochs extend a run, unless a cosine rate
    /// spans them. The initialisation has nothing to do on resume (the weights come from the checkpoint), so any is
    /// accepted, and the job keeps the one its weights started from (see <see cref="Continue"/>). Everything else (the
    /// network, optimizer, seed, batch and schedule) fixes what the run is.
    /// </summary>
    public bool MayChangeOnResume(TrainingSetting setting) => setting switch
    {
        TrainingSetting.Data or TrainingSetting.LearningRate or TrainingSetting.ClipNorm or TrainingSetting.Patience or TrainingSetting.Init => true,
        TrainingSetting.Epochs => Options.Schedule != "cosine",
        _ => false,
    };

    /// <summary>
    /// Whether <paramref name="other"/>'s value of <paramref name="setting"/> means the same as this job's: the same
    /// text, the same initialisation by another name ("he" and "he_normal"), or any label column where this job, recorded
    /// before label columns were resolved, has none (the data fingerprint still tells whether the labels are the same).
    /// </summary>
    public bool Agrees(TrainingSetting setting, TrainingJob other) => setting switch
    {
        TrainingSetting.LabelColumn when LabelColumn is null => true,
        TrainingSetting.Architecture when Architecture is not null && other.Architecture is not null => Canonical(Architecture) == Canonical(other.Architecture),
        // recorded before tasks were: every run was a classification
        TrainingSetting.Task when Task is null => other.Task is null or "classification",
        TrainingSetting.Init when InitKindOf(Init) is { } kind => kind == InitKindOf(other.Init),
        _ => Format(setting) == other.Format(setting),
    };

    /// <summary>A spec in its canonical form ("layernorm" written "ln"), or as written when it does not parse.</summary>
    private static string Canonical(string architecture)
    {
        try { return Nn.ArchitectureSpec.Parse(architecture).ToString(); }
        catch (Nn.ArchitectureSpecException) { return architecture; }
    }

    private static InitKind? InitKindOf(string name)
    {
        try { return Initializers.Parse(name); }
        catch (ArgumentException) { return null; }
    }

    /// <summary>
    /// The job a resumed run continues: this recorded job, with the settings in <paramref name="given"/> that were
    /// given explicitly. A given setting that <see cref="Agrees"/> with the recorded one is fine; one that differs is taken
    /// when it <see cref="MayChangeOnResume"/>, else a <see cref="CheckpointMismatchException"/>. A given initialisation
    /// is accepted and ignored: the weights come from the checkpoint.
    /// </summary>
    public TrainingJob Continue(TrainingJob given, IEnumerable<TrainingSetting> explicitlyGiven)
    {
        var job = this;
        foreach (var s in explicitlyGiven.Distinct().Order())
        {
            if (s == TrainingSetting.Init || Agrees(s, given)) continue;
            if (!MayChangeOnResume(s))
                throw new CheckpointMismatchException(s, Format(s), given.Format(s),
                    s == TrainingSetting.Epochs ? CheckpointMismatchReason.CosineSpansEpochs : CheckpointMismatchReason.Fixed);
            job = job.With(s, given);
        }
        return job;
    }
}
