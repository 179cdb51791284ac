using System.Diagnostics;
using System.Numerics;
using Backprop.Core;
using Backprop.Data;
using Backprop.Distributed;
using Backprop.Health;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Ops;

namespace Backprop.Training;

/// <summary>Progress within an epoch, reported after every step: enough for a progress bar.</summary>
/// <param name="Epoch">The epoch under way, 1-based.</param>
/// <param name="Epochs">The run's last epoch.</param>
/// <param name="Samples">Training samples done so far in this epoch.</param>
/// <param name="SamplesPerEpoch">The training set's size.</param>
/// <param name="Elapsed">Time since the epoch began.</param>
public readonly record struct BatchProgress(int Epoch, int Epochs, int Samples, int SamplesPerEpoch, TimeSpan Elapsed);

/// <summary>One finished epoch: its row of the history, the gradient health when collected, and whether the run stops early after it.</summary>
public sealed record EpochReport(EpochResult Result, LayerHealth[]? Diagnostics, bool StopsEarly);

/// <summary>What a finished run gives: its whole history (a resumed run's includes the checkpoint's epochs) and the test evaluation.</summary>
/// <param name="History">Every epoch's row, first epoch first.</param>
/// <param name="Diagnostics">The gradient health of each epoch this run trained, when collected.</param>
/// <param name="TestLoss">The mean loss on the test split; NaN when the test split is empty.</param>
/// <param name="TrainSeconds">Training time over the whole history.</param>
/// <param name="SamplesTrained">Training samples over the whole history.</param>
/// <param name="TestAccuracy">The task's headline metric on the test split (accuracy for classification); every metric in <see cref="TestMetrics"/>.</param>
/// <param name="StoppedEarly">Whether early stopping ended the run before its last epoch.</param>
public sealed record TrainingResult(IReadOnlyList<EpochResult> History, IReadOnlyList<LayerHealth[]> Diagnostics, double TestLoss, double TestAccuracy,
    double TrainSeconds, long SamplesTrained, bool StoppedEarly)
{
    /// <summary>All of the task's metrics on the test split; empty when the test split is.</summary>
    public IReadOnlyList<Metric> TestMetrics { get; init; } = [];
    /// <summary>The epoch whose weights were kept (the best validation loss, when early stopping restored them); null: the last.</summary>
    public int? BestEpoch { get; init; }

    /// <summary>Training throughput over the whole history: <see cref="SamplesTrained"/> / <see cref="TrainSeconds"/>.</summary>
    public double SamplesPerSecond => SamplesTrained / Math.Max(1e-9, TrainSeconds);
}

/// <summary>
/// A whole training job: the data split, the network, epochs under a learning-rate schedule, early stopping,
/// divergence checks, a checkpoint after every epoch, resuming from one, and the final test evaluation. It reports
/// progress and never prints. Deterministic for a given job and thread count, and a resumed run continues bit for
/// bit where its checkpoint left off.
/// </summary>
public sealed class TrainingRun<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly List<EpochResult> _history;
    private readonly Checkpoint.RunIdentity? _identity;
    private double _bestValidationLoss;
    private int _epochsSinceBest;
    private bool _ran;

    private TrainingRun(TrainingJob job, PreparedData data, Sequential<T> network, Trainer<T> trainer, string? checkpointPath,
        Checkpoint.RunIdentity? identity, Checkpoint<T>? resumed, string? defaultsSaid)
    {
        Job = job;
        DefaultsSaid = defaultsSaid;
        Data = data;
        Network = network;
        Trainer = trainer;
        CheckpointPath = checkpointPath;
        _identity = identity;
        _history = resumed is null ? [] : [.. resumed.History];
        _bestValidationLoss = resumed?.BestValidationLoss ?? double.PositiveInfinity;
        _epochsSinceBest = resumed?.EpochsSinceBest ?? 0;
        FirstEpoch = resumed is null ? 1 : resumed.Epoch + 1;
    }

    /// <summary>The job as run: layer sizes, precision and weight decay resolved. Checkpoints record it.</summary>
    public TrainingJob Job { get; }
    /// <summary>The data, split (train, validation, test) and normalised.</summary>
    public PreparedData Data { get; }
    /// <summary>The network being trained, in place (a resumed checkpoint's when resuming).</summary>
    public Sequential<T> Network { get; }
    /// <summary>The trainer of <see cref="Network"/>, with its optimizer.</summary>
    public Trainer<T> Trainer { get; }
    /// <summary>Where a checkpoint is written after every epoch; null: none.</summary>
    public string? CheckpointPath { get; }
    /// <summary>The first epoch this run trains: 1, or the one after a resumed checkpoint's.</summary>
    public int FirstEpoch { get; }
    /// <summary>The task the run trains (resolved from the data when the job names none).</summary>
    public TrainingTask Task => Trainer.Objective.Task;
    /// <summary>What the run chose by itself, in words: the tabular defaults (see <see cref="TabularDefaults"/>); null when nothing was.</summary>
    public string? DefaultsSaid { get; }
    /// <summary>The epochs so far, a resumed checkpoint's included.</summary>
    public IReadOnlyList<EpochResult> History => _history;

    /// <summary>
    /// Prepares a run: validates the job, loads and splits the data, and builds the network (or takes the
    /// checkpoint's, with its optimizer state). A checkpoint that the job contradicts (another seed, batch size,
    /// optimizer, layers, activation, data, or epochs under a cosine rate) is refused with a <see cref="CheckpointMismatchException"/>,
    /// and a job whose precision is not <typeparamref name="T"/>'s with an <see cref="InvalidTrainingSettingException"/>.
    /// The job as run records the data's full path and the label column the data resolved.
    /// </summary>
    /// <param name="job">The whole configuration; validated first (<see cref="InvalidTrainingSettingException"/> for a bad setting).</param>
    /// <param name="resumeFrom">A checkpoint to continue; its path, for messages, is <paramref name="resumeSource"/>.</param>
    /// <param name="checkpointPath">Where to write a checkpoint after every epoch (atomically); null: none.</param>
    /// <param name="collectDiagnostics">Measure the gradient health of every epoch's last batch.</param>
    /// <param name="optimizers">Where the job's optimizer is looked up; null: <see cref="OptimizerRegistry.Default"/>.</param>
    /// <param name="resumeSource">How messages name the checkpoint resumed from (its path).</param>
    /// <param name="catalog">Where the job's activation is looked up; null: <see cref="Catalog.Default"/>.</param>
    /// <param name="context">What the steps, the optimizer and the evaluations run on; null means <see cref="Kernels.ComputeContext.Default"/>.</param>
    /// <param name="given">
    /// The settings the caller chose; the others are sized to a CSV file's rows (<see cref="TabularDefaults"/>). Null: all
    /// were chosen, nothing is adapted. Ignored for MNIST and on resume.
    /// </param>
    /// <param name="collective">The group this process trains in (data parallelism, see <see cref="DataParallel{T}"/>); null: one process.</param>
    /// <exception cref="DataFormatException">The data cannot be read, or holds too few rows for a training and a test split.</exception>
    public static TrainingRun<T> Create(TrainingJob job, Checkpoint<T>? resumeFrom = null, string? checkpointPath = null,
        bool collectDiagnostics = false, OptimizerRegistry? optimizers = null, string resumeSource = "checkpoint", Kernels.ComputeContext? context = null,
        Catalog? catalog = null, IReadOnlyCollection<TrainingSetting>? given = null, ICollective? collective = null)
    {
        optimizers ??= OptimizerRegistry.Default;
        job.Validate(optimizers, (catalog ?? Catalog.Default).Activations);
        CheckPrecision(job);
        // The full path, so that a checkpoint's job resumes from any working directory.
        job = job with { Data = Path.GetFullPath(job.Data) };
        var asked = job.Task is null ? null : TrainingTask.Find(job.Task)!;
        var data = DataLoading.PrepareFor(job.Data, new CsvTargets(job.LabelColumns, asked?.Targets), job.Options.Seed);
        if (data.Train.Count == 0 || data.Test.Count == 0)
            throw new DataFormatException($"{job.Data}: {data.Train.Count + data.Validation.Count + data.Test.Count} rows are too few for training and a held-out test split");
        return Create(job, data, null, resumeFrom, checkpointPath, collectDiagnostics, optimizers, resumeSource, context, catalog, given, collective);
    }

    private static void CheckPrecision(TrainingJob job)
    {
        string precision = TrainingJob.PrecisionOf<T>();
        if (job.Precision != precision)
            throw new InvalidTrainingSettingException(TrainingSetting.Precision, job.Precision,
                $"this run trains in {precision} (a training run of {typeof(T).Name}), not {job.Precision}");
    }

    /// <summary>
    /// Prepares a run on data already in memory (split and normalised; its <see cref="PreparedData.Kind"/> other than
    /// "csv" takes no tabular defaults), as <see cref="Create(TrainingJob, Checkpoint{T}?, string?, bool, OptimizerRegistry?, string, Kernels.ComputeContext?, Catalog?, IReadOnlyCollection{TrainingSetting}?, ICollective?)"/>
    /// does for a file: the job's <see cref="TrainingJob.Data"/> only names the data in the checkpoint. The test split may
    /// be empty: the result then has no test metrics (a NaN loss).
    /// </summary>
    /// <param name="network">
    /// The network to train, in place, from its current parameters; null: a new one initialised from the job. It must be
    /// the network the job describes (its <see cref="TrainingJob.Architecture"/>). Ignored when resuming: the checkpoint's is trained.
    /// </param>
    /// <param name="job">The whole configuration; validated first (<see cref="InvalidTrainingSettingException"/> for a bad setting).</param>
    /// <param name="data">The data, split and normalised.</param>
    /// <param name="resumeFrom">A checkpoint to continue; its path, for messages, is <paramref name="resumeSource"/>.</param>
    /// <param name="checkpointPath">Where to write a checkpoint after every epoch (atomically); null: none.</param>
    /// <param name="collectDiagnostics">Measure the gradient health of every epoch's last batch.</param>
    /// <param name="optimizers">Where the job's optimizer is looked up; null: <see cref="OptimizerRegistry.Default"/>.</param>
    /// <param name="resumeSource">How messages name the checkpoint resumed from (its path).</param>
    /// <param name="context">What the steps, the optimizer and the evaluations run on; null means <see cref="Kernels.ComputeContext.Default"/>.</param>
    /// <param name="catalog">Where the job's activation is looked up; null: <see cref="Catalog.Default"/>.</param>
    /// <param name="given">The settings the caller chose; the others are sized to the rows when the data is a CSV file's
    /// (<see cref="TabularDefaults"/>). Null: all were chosen.</param>
    /// <param name="collective">The group this process trains in (data parallelism, see <see cref="DataParallel{T}"/>); null: one process.</param>

    public static TrainingRun<T> Create(TrainingJob job, PreparedData data, Sequential<T>? network, Checkpoint<T>? resumeFrom = null, string? checkpointPath = null,
        bool collectDiagnostics = false, OptimizerRegistry? optimizers = null, string resumeSource = "checkpoint", Kernels.ComputeContext? context = null,
        Catalog? catalog = null, IReadOnlyCollection<TrainingSetting>? given = null, ICollective? collective = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        optimizers ??= OptimizerRegistry.Default;
        job.Validate(optimizers, (catalog ?? Catalog.Default).Activations);
        CheckPrecision(job);
        var o = job.Options;
        if (data.Train.Count == 0) throw new DataFormatException($"{job.Data}: no training rows");
        var asked = job.Task is null ? null : TrainingTask.Find(job.Task)!;
        var task = asked ?? TrainingTask.For(data.Targets);
        if (data.Kind == "mnist" && task != TrainingTask.Classification)
            throw new InvalidTrainingSettingException(TrainingSetting.Task, task.Name, "MNIST is a classification");
        var objective = Objective(job, task, data);
        string? defaultsSaid = null;
        if (given is not null && resumeFrom is null && data.Kind == "csv")
        {
            (job, defaultsSaid) = TabularDefaults.Apply(job, data.Train.Count, data.Features, data.Classes, given);
            o = job.Options;
        }
        // the network: an architecture spec, or an MLP of sizes (given, the checkpoint's, or the data's default) with
        // the hidden activation, norm and dropout
        catalog ??= Catalog.Default;
        int[]? sizes = job.Architecture is null
            ? job.Layers ?? resumeFrom?.Layers ?? (data.Kind == "mnist" ? [784, 512, 256, 10] : [data.Features, 64, data.Classes])
            : null;
        var spec = job.Architecture is { } text ? ArchitectureSpec.Parse(text, catalog) : ArchitectureSpec.Mlp(sizes!, job.Activation, job.Norm, job.Dropout, catalog);
        var (sizeSetting, sizeText) = sizes is null ? (TrainingSetting.Architecture, job.Architecture!) : (TrainingSetting.Layers, string.Join(",", sizes));
        if (spec.Inputs != data.Features)
            throw new InvalidTrainingSettingException(sizeSetting, sizeText, $"starts with {spec.Inputs} but {job.Data} has {data.Features} features per sample");
        if (spec.Outputs != data.Classes)
            throw new InvalidTrainingSettingException(sizeSetting, sizeText, task == TrainingTask.Classification
                ? $"ends with {spec.Outputs} but {job.Data} has {data.Classes} classes"
                : $"ends with {spec.Outputs} but {job.Data} has {data.Classes} {(task == TrainingTask.Regression ? "target columns" : "labels")}");
        // a loss that squashes its input itself (softmax cross-entropy, sigmoid BCE) takes logits: an output layer that
        // squashes them first would be squashed twice in training (and three times in a prediction of probabilities)
        if (objective.Loss.AppliesToInput is { } squash && spec.Layers[^1].Activation == squash)
            throw new InvalidTrainingSettingException(sizeSetting, sizeText,
                $"ends in {squash}, which {objective.Loss.Name} applies to the outputs itself (it takes logits): end with a layer without an activation " +
                "(predictions come as probabilities all the same)");
        job = job with
        {
            Layers = sizes,
            // the column the labels came from, so that repeating it (or the default it stood for) on resume agrees
            LabelColumn = data.LabelColumn ?? job.LabelColumn,
            Task = data.Kind == "mnist" && job.Task is null ? null : task.Name,
            Options = o with { WeightDecay = o.WeightDecay ?? optimizers.Get(o.Optimizer).DefaultWeightDecay },
        };

        var identity = resumeFrom is null && checkpointPath is null ? null : new Checkpoint.RunIdentity(job, Checkpoint.DataFingerprint(data.Train));
        if (resumeFrom is not null) CheckResumable(resumeFrom, job, spec, identity!);
        // a plain MLP is made as it always was, so that its runs stay bit-identical
        if (network is not null && resumeFrom is null && ArchitectureSpec.Of(network).ToString() != spec.ToString())
            throw new ArgumentException($"the network is {ArchitectureSpec.Of(network)} but the job describes {spec}", nameof(network));
        network = resumeFrom?.Model.Network ?? network ?? (spec.IsPlainMlp && sizes is not null
            ? Initializers.Mlp<T>(sizes, job.Activation, o.Seed, Initializers.Parse(job.Init), catalog)
            : Initializers.Network<T>(spec, o.Seed, Initializers.Parse(job.Init), catalog));
        // a batch norm cannot train on a batch of one sample: refuse a run whose last batch would be one, before it starts
        network.SetTraining(true);
        // (in data-parallel training each member normalises its own share of a batch, so every share must hold enough)
        var coupling = network.Layers.MaxBy(l => l.MinimumBatch)!;
        int lastBatch = data.Train.Count % o.BatchSize;
        int members = collective?.Size ?? 1;
        string batchText = o.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        int least = coupling.MinimumBatch * members;   // a batch of fewer rows leaves some member a share of fewer than MinimumBatch
        if (coupling.MinimumBatch > 1 && members == 1 && (o.BatchSize < coupling.MinimumBatch || lastBatch is > 0 and < 2))
            throw new InvalidTrainingSettingException(TrainingSetting.BatchSize, batchText,
                o.BatchSize < coupling.MinimumBatch
                    ? $"{coupling.Kind} in training mode needs batches of at least {coupling.MinimumBatch} samples (a batch of 1 has no variance)"
                    : $"{data.Train.Count} training rows in batches of {o.BatchSize} leave a last batch of 1 sample, which {coupling.Kind} cannot train on (a batch of 1 has no variance): choose another batch size");
        if (coupling.MinimumBatch > 1 && members > 1 && (o.BatchSize < least || lastBatch is > 0 && lastBatch < least))
        {
            int rows = o.BatchSize < least ? o.BatchSize : lastBatch;
            int share = Enumerable.Range(0, members).Select(r => Backprop.Data.BatchLoader.ShareOf(rows, r, members).Count).Where(c => c > 0).Min();
            string what = $"{(rows == o.BatchSize ? $"a batch of {rows}" : $"{data.Train.Count} training rows in batches of {o.BatchSize} leave a last batch of {rows}, which")} " +
                $"shared among {members} ranks gives a rank {share} sample{(share == 1 ? "" : "s")}";
            throw new InvalidTrainingSettingException(TrainingSetting.BatchSize, batchText,
                $"{what}; {coupling.Kind} in training mode normalises each rank's share and needs at least {coupling.MinimumBatch} (a batch of 1 has no variance): " +
                (rows == o.BatchSize ? $"choose a batch of at least {least}" : "choose another batch size"));
        }
        var parallel = collective is { Size: > 1 } ? new DataParallel<T>(collective) : null;
        var trainer = new Trainer<T>(network, job.Options, context, optimizers, objective) { CollectDiagnostics = collectDiagnostics, Parallel = parallel };
        resumeFrom?.RestoreOptimizer(trainer.Optimizer, resumeSource);
        // every member starts from rank 0's parameters, buffers and optimizer state (and step)
        parallel?.BroadcastModel(network, trainer.Optimizer);
        return new TrainingRun<T>(job, data, network, trainer, checkpointPath, identity, resumeFrom, defaultsSaid);
    }

    /// <summary>The task's loss (the job's, if it names one) with its settings: huber's δ, class weights, pos_weight.</summary>
    private static TrainingObjective Objective(TrainingJob job, TrainingTask task, PreparedData data)
    {
        var loss = job.Loss is null ? task.DefaultLoss : task.Losses.FirstOrDefault(l => l.Name == job.Loss)
            ?? throw new InvalidTrainingSettingException(TrainingSetting.Loss, job.Loss, $"expected {string.Join(", ", task.Losses.Select(l => l.Name))} for {task.Name}");
        double[]? classWeights = null, posWeight = null;
        if (job.ClassWeights is { } cw)
        {
            if (!task.TakesClassWeights)
                throw new InvalidTrainingSettingException(TrainingSetting.ClassWeights, cw, $"class weights are for classification, not {task.Name}");
            classWeights = cw == "balanced" ? Balanced(data.Train.Labels, data.Classes) : job.ParseWeights(TrainingSetting.ClassWeights, cw, positive: false);
            if (classWeights.Length != data.Classes)
                throw new InvalidTrainingSettingException(TrainingSetting.ClassWeights, cw,
                    $"gives {classWeights.Length} weights but the data has {data.Classes} classes ({string.Join(", ", data.LabelNames.Take(12))})");
        }
        if (job.PosWeight is { } pw)
        {
            if (!task.TakesPosWeight)
                throw new InvalidTrainingSettingException(TrainingSetting.PosWeight, pw, $"pos_weight is for multilabel, not {task.Name}");
            posWeight = job.ParseWeights(TrainingSetting.PosWeight, pw, positive: true);
            if (posWeight.Length == 1) posWeight = Enumerable.Repeat(posWeight[0], data.Classes).ToArray();
            if (posWeight.Length != data.Classes)
                throw new InvalidTrainingSettingException(TrainingSetting.PosWeight, pw,
                    $"gives {posWeight.Length} weights but the data has {data.Classes} labels ({string.Join(", ", data.LabelNames)})");
        }
        var settings = new LossSettings { HuberDelta = job.HuberDelta, ClassWeights = classWeights, PosWeight = posWeight };
        return new TrainingObjective(task, loss, settings, data.TargetScaling);
    }

    /// <summary>scikit-learn's "balanced" class weights: n / (classes · count of the class); a class absent from training gets 0.</summary>
    public static double[] Balanced(ReadOnlySpan<int> labels, int classes)
    {
        var counts = new long[classes];
        foreach (int y in labels) counts[y]++;
        var w = new double[classes];
        for (int k = 0; k < classes; k++) w[k] = counts[k] == 0 ? 0.0 : (double)labels.Length / (classes * counts[k]);
        return w;
    }

    /// <summary>
    /// The checks a checkpoint of any age allows: seed and batch size fix the split and the batch order, the
    /// fingerprint the rows, the optimizer its state, the layers the weights, and a cosine rate spans the run's epochs.
    /// </summary>
    private static void CheckResumable(Checkpoint<T> ck, TrainingJob job, ArchitectureSpec spec, Checkpoint.RunIdentity run)
    {
        var o = job.Options;
        if (ck.Seed is int s && s != o.Seed) throw Mismatch(TrainingSetting.Seed, s, o.Seed);
        if (ck.BatchSize is int b && b != o.BatchSize) throw Mismatch(TrainingSetting.BatchSize, b, o.BatchSize);
        if (ck.Optimizer != o.Optimizer)
            throw new CheckpointMismatchException(TrainingSetting.Optimizer, ck.Optimizer, o.Optimizer, CheckpointMismatchReason.Fixed);
        var saved = ArchitectureSpec.Of(ck.Model.Network);
        if (!saved.IsPlainMlp || !spec.IsPlainMlp || job.Layers is null)
        {
            // norm and dropout layers are part of the network: the whole spec must agree
            if (saved.ToString() != spec.ToString())
                throw new CheckpointMismatchException(job.Architecture is null ? TrainingSetting.Layers : TrainingSetting.Architecture,
                    saved.ToString(), spec.ToString(), CheckpointMismatchReason.Fixed);
        }
        else if (!ck.Layers.SequenceEqual(job.Layers))
            throw new CheckpointMismatchException(TrainingSetting.Layers, string.Join(",", ck.Layers), string.Join(",", job.Layers), CheckpointMismatchReason.Fixed);
        // the hidden activation is part of the network (the output layer is linear); a network without hidden layers has none
        var activations = ModelFile.ArchitectureOf(ck.Model.Network).Activations;
        if (job.Architecture is null && saved.IsPlainMlp && activations.Length > 1 && activations[0] != job.Activation)
            throw new CheckpointMismatchException(TrainingSetting.Activation, activations[0], job.Activation, CheckpointMismatchReason.Fixed);
        if (ck.Data is string d && d != run.Data)
            throw new CheckpointMismatchException(TrainingSetting.Data, d, run.Data, CheckpointMismatchReason.OtherData);
        if (ck.Schedule == "cosine" && ck.Epochs is int e)
        {
            if (o.Schedule != "cosine")
                throw new CheckpointMismatchException(TrainingSetting.Schedule, "cosine", o.Schedule, CheckpointMismatchReason.CosineSpansEpochs);
            if (o.Epochs != e) throw new CheckpointMismatchException(TrainingSetting.Epochs, e.ToString(), o.Epochs.ToString(), CheckpointMismatchReason.CosineSpansEpochs);
        }
        if (ck.Job is { } recorded)
            foreach (var setting in Enum.GetValues<TrainingSetting>())
                if (!recorded.MayChangeOnResume(setting) && !recorded.Agrees(setting, job))
                    throw new CheckpointMismatchException(setting, recorded.Format(setting), job.Format(setting), CheckpointMismatchReason.Fixed);
    }

    private static CheckpointMismatchException Mismatch(TrainingSetting s, int checkpoint, int given) =>
        new(s, checkpoint.ToString(System.Globalization.CultureInfo.InvariantCulture), given.ToString(System.Globalization.CultureInfo.InvariantCulture),
            CheckpointMismatchReason.Fixed);

    /// <summary>
    /// Trains the remaining epochs and evaluates on the test split. <paramref name="batches"/> hears after every step,
    /// <paramref name="epochs"/> after every epoch (before its checkpoint is written); both are called on this thread.
    /// Cancellation is checked before every step: it throws <see cref="OperationCanceledException"/> and leaves the
    /// last checkpoint, that of the last complete epoch, as it was. Divergence throws a
    /// <see cref="NonFiniteValueException"/>, also leaving the last checkpoint as it was. A run runs once.
    /// </summary>
    public TrainingResult Run(IProgress<BatchProgress>? batches = null, IProgress<EpochReport>? epochs = null, CancellationToken cancellation = default)
    {
        if (_ran) throw new InvalidOperationException("a training run runs once");
        _ran = true;
        var o = Job.Options;
        int trainCount = Data.Train.Count;
        var loader = new BatchLoader(Data.Train, o.BatchSize, o.Seed);
        if (Trainer.Parallel is { } parallel) loader.SetShard(parallel.Rank, parallel.Size);
        var schedule = Trainer.Schedule(loader.BatchesPerEpoch);
        var health = new List<LayerHealth[]>();
        double trainSeconds = _history.Sum(h => h.Seconds);
        long samplesTrained = (long)_history.Count * trainCount;
        // A run killed after the checkpoint of the epoch it stopped at (before it saved its model) has nothing left to
        // train: it stops at once, unless it is resumed with a larger patience.
        bool stopped = FirstEpoch > 1 && Data.Validation.Count > 0 && o.Patience > 0 && _epochsSinceBest >= o.Patience;
        for (int epoch = FirstEpoch; epoch <= o.Epochs && !stopped; epoch++)
        {
            cancellation.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            int e = epoch;
            Action<int>? onBatch = batches is null ? null : seen => batches.Report(new BatchProgress(e, o.Epochs, seen, trainCount, clock.Elapsed));
            var r = Trainer.TrainEpoch(loader, epoch, schedule, onBatch, cancellation);
            clock.Stop();
            double secs = clock.Elapsed.TotalSeconds;
            trainSeconds += secs;
            samplesTrained += trainCount;
            if (!double.IsFinite(r.loss))
                throw new NonFiniteValueException($"epoch {epoch}: the training loss is {r.loss}", DivergenceRemedy.LowerLearningRateOrClip, epoch);
            bool validate = Data.Validation.Count > 0;
            var validation = validate ? Trainer.Measure(Data.Validation) : null;
            double vl = validation?.Loss ?? double.NaN, va = validation?.Metrics.Headline ?? double.NaN;
            if (validate && !double.IsFinite(vl))
                throw new NonFiniteValueException($"epoch {epoch}: the validation loss is {vl} (the weights have diverged; ‖θ‖ of the parameters: " +
                    string.Join(", ", Network.Parameters().Select(p => Diagnostics.Norm<T>(p.Value.Span).ToString("0.0e0"))) + ")",
                    DivergenceRemedy.LowerLearningRateOrClip, epoch);
            var result = new EpochResult(epoch, r.loss, r.accuracy, validate ? vl : null, validate ? va : null,
                Trainer.Optimizer.LearningRate, secs, trainCount / secs, r.gradNorm)
            {
                Metrics = Trainer.LastTrainMetrics.Select(m => KeyValuePair.Create("train_" + m.Name, m.Value))
                    .Concat((validation?.Metrics.Results() ?? []).Select(m => KeyValuePair.Create("val_" + m.Name, m.Value))).ToDictionary(),
            };
            _history.Add(result);
            var diagnostics = Trainer.LastDiagnostics;
            if (diagnostics is not null) health.Add(diagnostics);
            if (validate)
            {
                if (vl < _bestValidationLoss - 1e-12)
                {
                    _bestValidationLoss = vl;
                    _epochsSinceBest = 0;
                    if (o.Patience > 0) KeepBest(epoch);
                }
                else _epochsSinceBest++;
                stopped = o.Patience > 0 && _epochsSinceBest >= o.Patience;
            }
            epochs?.Report(new EpochReport(result, diagnostics, stopped));
            // one member writes: rank 0 (all hold the same model)
            if (CheckpointPath is not null && Trainer.Parallel is not { Rank: > 0 })
                Checkpoint.Save(CheckpointPath, Network, Trainer.Optimizer, epoch, _history, _bestValidationLoss, _epochsSinceBest,
                    Data.LabelNames, Data.Standardizer, _identity!);
        }

        // early stopping keeps the weights of the best validation loss this run saw
        int? bestEpoch = null;
        if (_best is not null && _bestEpoch != _history[^1].Epoch)
        {
            var state = State();
            for (int i = 0; i < state.Count; i++) _best[i].Span.CopyTo(state[i].Span);
            bestEpoch = _bestEpoch;
        }
        // data in memory may come without a test split: no test metrics then
        var test = Data.Test.Count > 0 ? Trainer.Measure(Data.Test) : null;
        return new TrainingResult(_history.ToArray(), health, test?.Loss ?? double.NaN, test?.Metrics.Headline ?? double.NaN, trainSeconds, samplesTrained, stopped)
        {
            TestMetrics = test?.Metrics.Results() ?? [], BestEpoch = bestEpoch,
        };
    }

    private Tensor<T>[]? _best;
    private int _bestEpoch;

    /// <summary>Every parameter and buffer of the network, in order.</summary>
    private List<Tensor<T>> State() =>
        [.. Network.Layers.SelectMany(l => l.Parameters.Select(p => p.Value.Value).Concat(l.Buffers.Select(b => b.Value)))];

    private void KeepBest(int epoch)
    {
        var state = State();
        _best ??= state.Select(t => new Tensor<T>(t.ShapeArray)).ToArray();
        for (int i = 0; i < state.Count; i++) state[i].Span.CopyTo(_best[i].Span);
        _bestEpoch = epoch;
    }

    /// <summary>Saves the trained network as a model file, with the data's label names and normalisation, and the task, label columns and target scaling.</summary>
    public void SaveModel(string path) => ModelFile.Save(path, Network, Data.LabelNames, Data.Standardizer,
        extraMetadata: Data.Kind == "csv" ? TaskMetadata.Write(Task, Data.LabelColumns, Data.TargetScaling) : null, featureNames: Data.FeatureNames);
}
