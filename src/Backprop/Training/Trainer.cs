using System.Numerics;
using Backprop.Data;
using Backprop.Health;
using Backprop.Nn;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Ops;

namespace Backprop.Training;

/// <summary>
/// How a <see cref="Trainer{T}"/> trains: the optimizer and its hyper-parameters, the learning-rate schedule, the batch
/// size, the epochs, the seed, gradient clipping and early stopping. The defaults are Adam at 1e-3, batch 128, 10 epochs.
/// </summary>
public sealed record TrainOptions
{
    /// <summary>The passes over the training split (early stopping may end the run sooner).</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>The rows per optimizer step; the last batch of an epoch may be smaller.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>Seeds the initial weights, the train/validation split, the batch order and dropout.</summary>
    public int Seed { get; init; }
    /// <summary>The base learning rate, which <see cref="Schedule"/> and <see cref="WarmupSteps"/> vary over the run.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>The optimizer's name in the <see cref="OptimizerRegistry"/>: sgd, adam, adamw or rmsprop for the default one.</summary>
    public string Optimizer { get; init; } = "adam";
    /// <summary>SGD's momentum factor, in [0, 1); the other optimizers ignore it.</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>Whether SGD's momentum is Nesterov's; the other optimizers ignore it.</summary>
    public bool Nesterov { get; init; }
    /// <summary>Null: the optimizer's own default (0.01 for AdamW, as torch.optim.AdamW; 0 otherwise).</summary>
    public double? WeightDecay { get; init; }
    /// <summary>The learning-rate schedule: one of <see cref="LrSchedule.Kinds"/> (constant, step, cosine).</summary>
    public string Schedule { get; init; } = "constant";
    /// <summary>Optimizer steps over which the learning rate rises linearly to <see cref="LearningRate"/>; 0: no warm-up.</summary>
    public int WarmupSteps { get; init; }
    /// <summary>The step schedule's period: the rate is multiplied by <see cref="Gamma"/> every this many epochs.</summary>
    public int StepSizeEpochs { get; init; } = 1;
    /// <summary>The step schedule's decay factor per period.</summary>
    public double Gamma { get; init; } = 0.1;
    /// <summary>The largest global L2 norm of the gradients; larger ones are scaled down to it. 0: no clipping.</summary>
    public double ClipNorm { get; init; }
    /// <summary>Epochs without a better validation loss before stopping; 0 disables early stopping.</summary>
    public int Patience { get; init; }
}

/// <summary>
/// One epoch's row of a run's history. <see cref="TrainAccuracy"/> and <see cref="ValidationAccuracy"/> hold the task's
/// headline metric (accuracy for classification, R² for regression, subset accuracy for multi-label); <see cref="Metrics"/>
/// holds all of the task's metrics as "train_NAME" and "val_NAME".
/// </summary>
public sealed record EpochResult(int Epoch, double TrainLoss, double TrainAccuracy, double? ValidationLoss, double? ValidationAccuracy,
    double LearningRate, double Seconds, double SamplesPerSecond, double? GradientNorm)
{
    /// <summary>All of the task's metrics, as "train_NAME" and "val_NAME"; null in histories recorded before they were.</summary>
    public IReadOnlyDictionary<string, double>? Metrics { get; init; }
}

/// <summary>What a network is trained on: its task, the loss and the loss's settings, and the scaling of regression targets.</summary>
public sealed record TrainingObjective(TrainingTask Task, LossKind Loss, LossSettings? Settings = null, Data.Standardizer? TargetScaling = null)
{
    /// <summary>Softmax cross-entropy on class indices.</summary>
    public static TrainingObjective Classification { get; } = new(TrainingTask.Classification, LossKind.CrossEntropy);
}

/// <summary>
/// One training step recorded once per batch size and replayed: the input leaf and the targets (class indices, or a
/// batch × outputs leaf of target values) are refilled, the tape re-run forward and backward, and the optimizer updates
/// the parameters in place. The loss is the <see cref="TrainingObjective"/>'s.
/// </summary>
public sealed class TrainingStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A classification step (softmax cross-entropy on class indices) of <paramref name="batchSize"/> rows.</summary>
    public TrainingStep(Sequential<T> network, int batchSize, Kernels.ComputeContext? context = null)
        : this(network, batchSize, TrainingObjective.Classification, context) { }

    /// <summary>Records the network's forward pass and the objective's loss on a tape for batches of <paramref name="batchSize"/> rows.</summary>
    /// <param name="network">The network; its parameters are the tape's leaves, shared, not copied.</param>
    /// <param name="batchSize">The rows of every batch this step runs; a smaller batch needs its own step.</param>
    /// <param name="objective">The task and loss.</param>
    /// <param name="context">What the tape's kernels run on; null: <see cref="Kernels.ComputeContext.Default"/>.</param>
    /// <exception cref="ArgumentException">The loss records nothing to train on.</exception>
    public TrainingStep(Sequential<T> network, int batchSize, TrainingObjective objective, Kernels.ComputeContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(objective);
        Network = network;
        BatchSize = batchSize;
        Objective = objective;
        Tape = new Tape<T>(context ?? Kernels.ComputeContext.Default);
        Input = Tape.Leaf(new Tensor<T>(batchSize, network.Inputs), requiresGrad: false, "x");
        Targets = new ClassTargets(new int[batchSize]);
        if (objective.Loss.Target == LossTarget.Values) Values = Tape.Leaf(new Tensor<T>(batchSize, network.Outputs), requiresGrad: false, "y");
        Trace = network.Forward(Input);
        Loss = objective.Loss.Record(Trace.Output, Values, Targets, Reduction.Mean, objective.Settings)
            ?? throw new ArgumentException($"the loss {objective.Loss.Name} records nothing to train on", nameof(objective));
    }

    /// <summary>The network the step runs.</summary>
    public Sequential<T> Network { get; }
    /// <summary>The rows of every batch.</summary>
    public int BatchSize { get; }
    /// <summary>The task and loss the step trains on.</summary>
    public TrainingObjective Objective { get; }
    /// <summary>The recorded forward pass, replayed for every batch.</summary>
    public Tape<T> Tape { get; }
    /// <summary>The input leaf, batch × inputs, which <see cref="Load(ReadOnlySpan{float}, ReadOnlySpan{int})"/> refills.</summary>
    public Var<T> Input { get; }
    /// <summary>The class indices of the batch (read by a class-index loss).</summary>
    public ClassTargets Targets { get; }
    /// <summary>The batch's target values, batch × outputs, for a loss on values; null for a class-index loss.</summary>
    public Var<T>? Values { get; }
    /// <summary>Each layer's recorded pre-activation and output, for diagnostics and the location of a non-finite value.</summary>
    public ForwardTrace<T> Trace { get; }
    /// <summary>The scalar loss of the batch, reduced by its mean.</summary>
    public Var<T> Loss { get; }
    /// <summary>The network's outputs of the last forward pass, batch × outputs (before softmax or sigmoid).</summary>
    public Tensor<T> Logits => Trace.Output.Value;

    /// <summary>Loads a batch's features (batch × inputs, row-major) and class indices.</summary>
    public void Load(ReadOnlySpan<float> x, ReadOnlySpan<int> y)
    {
        Kernels.RowGather.Convert(x, Input.Value.Data);
        y.CopyTo(Targets.Indices);
    }

    /// <summary>Features and target values (rows × outputs).</summary>
    public void Load(ReadOnlySpan<float> x, ReadOnlySpan<float> values)
    {
        Kernels.RowGather.Convert(x, Input.Value.Data);
        if (Values is null) throw new InvalidOperationException($"the loss {Objective.Loss.Name} takes class indices, not values");
        Kernels.RowGather.Convert(values, Values.Value.Data);
    }

    /// <summary>Gathers the loader's current batch straight into the input (see <see cref="BatchLoader.Advance"/>).</summary>
    public void Load(BatchLoader loader)
    {
        loader.GatherX<T>(Input.Value.Span, Tape.Context);
        if (Values is not null) loader.GatherTargets<T>(Values.Value.Span);
        else loader.CurrentY.CopyTo(Targets.Indices);
    }

    /// <summary>Forward and backward; returns nothing so that a step allocates nothing.</summary>
    public void ForwardBackward()
    {
        Tape.Forward();
        Tape.Backward(Loss);
    }

    /// <summary>The forward pass alone (<see cref="Backward"/> follows).</summary>
    public void Forward() => Tape.Forward();

    /// <summary>The backward pass of the last forward pass, for the loss times <paramref name="scale"/>.</summary>
    public void Backward(T scale) => Tape.Backward(Loss, scale);

    /// <summary>What the loss's mean reduction divided by in the last forward pass: the rows, or the sum of the targets' class weights.</summary>
    public double LossDivisor => Loss.Op is LossOp<T> op ? op.Divisor(Loss.InputArray) : BatchSize;

    /// <summary>Adds the first <paramref name="n"/> rows of the last forward pass to <paramref name="metrics"/>.</summary>
    public void Measure(TaskMetrics metrics, ReadOnlySpan<int> classes, int n)
    {
        int c = Logits.Dim(1);
        metrics.Add<T>(Logits.Span[..(n * c)], Values is null ? default : Values.Value.Span[..(n * c)], classes, n);
    }

    /// <summary>How many of the first labels.Length rows of the last forward pass have their largest output at the label.</summary>
    public int CountCorrect(ReadOnlySpan<int> labels)
    {
        var logits = Logits;
        int c = logits.Dim(1), correct = 0;
        for (int i = 0; i < labels.Length; i++)
            if (ArgMax(logits.Data.Slice(i * c, c)) == labels[i]) correct++;
        return correct;
    }

    /// <summary>The index of the largest element of <paramref name="row"/>; the first one on ties.</summary>
    public static int ArgMax(ReadOnlySpan<T> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
        return best;
    }
}

/// <summary>
/// Training produced NaN or ±Inf. <see cref="Detail"/> names the step, the layer and the op whose output first held a
/// non-finite value (in forward order), so the cause can be found; <see cref="Remedy"/> says what may help, so that a
/// caller can word it in its own terms. Parameters are left as they were unless the detail says otherwise.
/// </summary>
public sealed class NonFiniteValueException : Exception
{
    /// <summary>Builds the exception; the message is <paramref name="detail"/> followed, for <see cref="DivergenceRemedy.LowerLearningRateOrClip"/>, by that advice.</summary>
    /// <param name="detail">Where and what, as <see cref="Detail"/> describes.</param>
    /// <param name="remedy">What may help.</param>
    /// <param name="epoch">The epoch (1-based), when known.</param>
    /// <param name="step">The optimizer step (1-based), when known.</param>
    /// <param name="batch">The batch of the epoch (1-based), when known.</param>
    /// <param name="layer">"layers.I" or "the loss", when an op was found.</param>
    /// <param name="op">The op's name, when one was found.</param>
    public NonFiniteValueException(string detail, DivergenceRemedy remedy = DivergenceRemedy.None, int? epoch = null, long? step = null,
        int? batch = null, string? layer = null, string? op = null)
        : base(detail + (remedy == DivergenceRemedy.LowerLearningRateOrClip ? "; lower the learning rate or clip the gradients" : ""))
    {
        Detail = detail;
        Remedy = remedy;
        Epoch = epoch;
        Step = step;
        Batch = batch;
        Layer = layer;
        Op = op;
    }

    /// <summary>Where and what, without the remedy: "step 7 (epoch 1, batch 7): layers.0 linear (…) produced NaN at element 3".</summary>
    public string Detail { get; }
    /// <summary>What a caller can suggest.</summary>
    public DivergenceRemedy Remedy { get; }
    /// <summary>The epoch (1-based) during which it happened.</summary>
    public int? Epoch { get; }
    /// <summary>The optimizer step (1-based) during which it happened.</summary>
    public long? Step { get; }
    /// <summary>The batch of the epoch, 1-based.</summary>
    public int? Batch { get; }
    /// <summary>"layers.I", or "the loss".</summary>
    public string? Layer { get; }
    /// <summary>The op's name, e.g. "linear".</summary>
    public string? Op { get; }

    /// <summary>The forward pass of <paramref name="step"/> was not finite: the first leaf (input or parameter) that already held
    /// a non-finite value, else the first op, in forward order, whose output did.</summary>
    /// <param name="step">The step whose forward pass just ran.</param>
    /// <param name="epoch">The epoch, 1-based.</param>
    /// <param name="batch">The batch of the epoch, 0-based (reported 1-based).</param>
    /// <param name="stepNumber">The optimizer step, 1-based.</param>
    public static NonFiniteValueException Locate<T>(TrainingStep<T> step, int epoch, int batch, long stepNumber)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        string where = $"step {stepNumber} (epoch {epoch}, batch {batch + 1})";
        foreach (var leaf in step.Tape.Leaves)
        {
            int bad = FirstNonFinite<T>(leaf.Value.Span);
            if (bad >= 0)
                return new($"{where}: {(leaf.Name == "x" ? "the input batch" : "a parameter")} already holds {leaf.Value.Span[bad]} (a previous update diverged)",
                    DivergenceRemedy.None, epoch, stepNumber, batch + 1);
        }
        var nodes = step.Tape.Nodes;
        for (int k = 0; k < nodes.Count; k++)
        {
            var node = nodes[k];
            int bad = FirstNonFinite<T>(node.Value.Span);
            if (bad < 0) continue;
            string layer = LayerOf(step, k);
            return new($"{where}: {layer} {node.Op!.Name} ({node.Op.Formula}) produced {node.Value.Span[bad]} at element {bad}",
                DivergenceRemedy.LowerLearningRateOrClip, epoch, stepNumber, batch + 1, layer, node.Op.Name);
        }
        return new($"{where}: the loss is not finite", DivergenceRemedy.None, epoch, stepNumber, batch + 1);
    }

    /// <summary>The forward pass was finite but a gradient was not: the first op, in backward order, whose input gradient went bad.</summary>
    public static NonFiniteValueException LocateBackward<T>(TrainingStep<T> step, int epoch, int batch, long stepNumber)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        string where = $"step {stepNumber} (epoch {epoch}, batch {batch + 1})";
        var nodes = step.Tape.Nodes;
        for (int k = nodes.Count - 1; k >= 0; k--)
        {
            var node = nodes[k];
            var inputs = node.Inputs;
            for (int j = 0; j < inputs.Count; j++)
            {
                var input = inputs[j];
                if (!input.RequiresGrad || !input.HasGrad) continue;
                int bad = FirstNonFinite<T>(input.Grad.Span);
                if (bad < 0) continue;
                string layer = LayerOf(step, k);
                return new($"{where}: the backward pass of {layer} {node.Op!.Name} ({node.Op.GradFormulas[Math.Min(j, node.Op.GradFormulas.Count - 1)]}) " +
                    $"produced {input.Grad.Span[bad]}; the parameters were updated with it",
                    DivergenceRemedy.LowerLearningRateOrClip, epoch, stepNumber, batch + 1, layer, node.Op.Name);
            }
        }
        return new($"{where}: a gradient is not finite", DivergenceRemedy.LowerLearningRateOrClip, epoch, stepNumber, batch + 1);
    }

    /// <summary>"layers.I" for a node that layer I recorded (its <see cref="LayerTrace{T}"/> knows the range), else the loss.</summary>
    private static string LayerOf<T>(TrainingStep<T> step, int nodeIndex) where T : unmanaged, IFloatingPointIeee754<T> =>
        step.Trace.LayerOfNode(nodeIndex) is { } layer ? $"layers.{layer.Index}" : "the loss";

    private static int FirstNonFinite<T>(ReadOnlySpan<T> data) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < data.Length; i++) if (!T.IsFinite(data[i])) return i;
        return -1;
    }
}

/// <summary>Mini-batch training of a network on a <see cref="TrainingObjective"/> (by default a classifier with softmax cross-entropy).</summary>
public sealed class Trainer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Dictionary<int, TrainingStep<T>> _steps = [];
    private readonly Var<T>[] _parameters;

    /// <summary>A trainer of <paramref name="network"/> with a new optimizer of its parameters, as <paramref name="options"/> describe.</summary>
    /// <param name="network">The network, trained in place.</param>
    /// <param name="options">The optimizer, schedule, batch size and epochs.</param>
    /// <param name="context">What the steps and the optimizer run on; null means <see cref="Kernels.ComputeContext.Default"/>.</param>
    /// <param name="optimizers">Where <see cref="TrainOptions.Optimizer"/> is looked up; null: <see cref="OptimizerRegistry.Default"/>.</param>
    /// <param name="objective">The task and loss; null: classification with softmax cross-entropy.</param>
    public Trainer(Sequential<T> network, TrainOptions options, Kernels.ComputeContext? context = null, OptimizerRegistry? optimizers = null,
        TrainingObjective? objective = null)
    {
        Network = network;
        Options = options;
        Objective = objective ?? TrainingObjective.Classification;
        _trainMetrics = Objective.Task.CreateMetrics(network.Outputs, Objective.TargetScaling);
        Context = context ?? Kernels.ComputeContext.Default;
        _parameters = network.Parameters().ToArray();
        _flatParameters = _parameters.SequenceEqual(network.ParameterValues.Parameters);
        Optimizer = (optimizers ?? OptimizerRegistry.Default).Get(options.Optimizer)
            .Create(_parameters, new OptimizerSettings(options.LearningRate, options.Momentum, options.Nesterov, options.WeightDecay), Context);
    }

    /// <summary>What the steps and the optimizer run on.</summary>
    public Kernels.ComputeContext Context { get; }
    /// <summary>The task and loss trained on.</summary>
    public TrainingObjective Objective { get; }
    private readonly TaskMetrics _trainMetrics;

    /// <summary>The task's metrics over the most recent epoch's training batches (each measured before its update).</summary>
    public IReadOnlyList<Metric> LastTrainMetrics { get; private set; } = [];
    /// <summary>The network being trained.</summary>
    public Sequential<T> Network { get; }
    /// <summary>The options it was created with.</summary>
    public TrainOptions Options { get; }
    /// <summary>The optimizer of the network's parameters (its state is what a checkpoint saves).</summary>
    public Optimizer<T> Optimizer { get; }

    /// <summary>When set, every epoch's last batch is measured for gradient health (see <see cref="Diagnostics"/>).</summary>
    public bool CollectDiagnostics { get; set; }

    /// <summary>The gradient health measured at the end of the most recent epoch (when collecting).</summary>
    public LayerHealth[]? LastDiagnostics { get; private set; }

    private Tensor<T>[]? _weightSnapshots;
    /// <summary>The network's parameters, in the optimizer's order.</summary>
    public IReadOnlyList<Var<T>> Parameters => _parameters;

    /// <summary>The recorded step for batches of <paramref name="batchSize"/> rows, recorded on first use and kept.</summary>
    public TrainingStep<T> StepFor(int batchSize)
    {
        if (!_steps.TryGetValue(batchSize, out var s)) _steps[batchSize] = s = new TrainingStep<T>(Network, batchSize, Objective, Context);
        return s;
    }

    /// <summary>The learning-rate schedule of the options over a run of <see cref="TrainOptions.Epochs"/> epochs of <paramref name="batchesPerEpoch"/> steps.</summary>
    public LrSchedule Schedule(int batchesPerEpoch) => new(
        Options.Schedule, Options.LearningRate, (long)batchesPerEpoch * Options.Epochs, Options.WarmupSteps,
        (long)batchesPerEpoch * Math.Max(1, Options.StepSizeEpochs), Options.Gamma);

    /// <summary>
    /// One epoch over <paramref name="loader"/>: the mean loss and the task's headline metric (accuracy for classification;
    /// all of its metrics in <see cref="LastTrainMetrics"/>); <paramref name="onBatch"/> sees the samples done so far. Cancellation
    /// is checked before every step, so a cancelled epoch stops between two complete updates.
    /// </summary>
    public (double loss, double accuracy, double? gradNorm) TrainEpoch(BatchLoader loader, int epoch, LrSchedule schedule, Action<int>? onBatch = null,
        CancellationToken cancellation = default)
    {
        Network.SetTraining(true);
        loader.StartEpoch(epoch);
        // the epoch's loss is Σ (batch mean × its divisor) / Σ divisors: the mean as the loss defines it (class weights)
        double lossSum = 0, divisorSum = 0;
        long globalSeen = 0;
        _trainMetrics.Reset();
        double gradNormSum = 0;
        int batches = 0;
        while (loader.Advance())
        {
            cancellation.ThrowIfCancellationRequested();
            int n = loader.CurrentBatchSize;
            // with a shard, this member's share of the global batch (none, when the batch is smaller than the group)
            var step = n > 0 ? StepFor(n) : null;
            // after StepFor: recording a step's tape runs a forward pass, which draws masks of its own
            SeedRandomLayers();
            step?.Load(loader);
            TrainingStep<T>? weightless = null;
            bool lastBatch = loader.BatchIndex == loader.BatchesPerEpoch - 1;
            // a sharded step: each member updates only its own block of the parameters (decided alike on every member)
            bool sharded = Parallel is not null && ShardsOptimizer && Options.ClipNorm <= 0 && !(CollectDiagnostics && lastBatch);
            if (Parallel is { } parallel)
            {
                // after the forward pass the members agree on whether every loss was finite (one member's NaN stops
                // them all with that member's message) and on the global batch's divisor, which scales each member's
                // backward pass; the gradients are then summed
                step?.Forward();
                // a share whose rows all weigh 0 (a class weight of 0) has a mean loss of 0/0: it adds nothing to the
                // global batch's loss or gradient, as an empty share (its rows still count in the metrics, below)
                if (step is not null && step.LossDivisor == 0) (weightless, step) = (step, null);
                bool finite = step is null || T.IsFinite(step.Loss.Value.Data[0]);
                int failed = parallel.AgreeOnBatch(step?.LossDivisor ?? 0, finite, out double scale);
                if (failed >= 0)
                {
                    var local = finite ? null : NonFiniteValueException.Locate(step!, epoch, loader.BatchIndex, Optimizer.StepCount + 1);
                    throw parallel.ShareDivergence(local, failed);
                }
                step?.Backward(T.CreateChecked(scale));
                var gradients = Network.Gradients.Complete();
                if (step is null) gradients.Clear();
                if (sharded) parallel.ReduceScatterGradients(gradients);
                else parallel.SumGradients(gradients);
            }
            else
            {
                step!.ForwardBackward();
                if (!T.IsFinite(step.Loss.Value.Data[0])) throw NonFiniteValueException.Locate(step, epoch, loader.BatchIndex, Optimizer.StepCount + 1);
            }
            if (Options.ClipNorm > 0) gradNormSum += GradientClipping.ClipGlobalNorm(_parameters, Options.ClipNorm);
            Optimizer.LearningRate = schedule.At(Optimizer.StepCount);
            // in data-parallel training every member measures its share (or nothing), and the parts are summed
            bool measure = CollectDiagnostics && lastBatch && (step is not null || Parallel is not null);
            if (measure) SnapshotWeights();
            // after sharded steps each member's optimizer state is current in its own block only: a step that updates
            // every parameter (the diagnostics step) needs all of it first (gathered through a buffer of its own, since
            // the gradient buffer now holds the summed gradient)
            if (!sharded && _stateScattered)
            {
                _stateStaging ??= new T[Network.Gradients.Length];
                Parallel!.AllGatherOptimizerState(Optimizer, _stateStaging);
                _stateScattered = false;
            }
            if (sharded)
            {
                _stateScattered = true;
                // ZeRO stage 1: the update of this member's block only, then the blocks gathered; the members agree first
                // on whether any block's summed gradient was not finite, so that all stop alike
                var flat = Network.Gradients.Complete();
                var (lo, count) = Parallel!.Block(flat.Length);
                Optimizer.Step(lo, count);
                bool anyNonFinite = Parallel.AnyMember(Optimizer.FirstNonFiniteGradient >= 0);
                // the parameters in one buffer, as the gradients are laid out: the blocks are gathered in place
                if (_flatParameters) Parallel.AllGatherParameters(Network.ParameterValues.Values);
                else Parallel.AllGatherParameters(_parameters, flat);
                if (anyNonFinite)
                    throw new NonFiniteValueException($"step {Optimizer.StepCount} (epoch {epoch}, batch {loader.BatchIndex + 1}): a summed gradient is not finite",
                        DivergenceRemedy.LowerLearningRateOrClip, epoch, Optimizer.StepCount, loader.BatchIndex + 1);
            }
            else Optimizer.Step();
            if (measure)
                LastDiagnostics = Parallel is { } members
                    ? Diagnostics.Measure(Network, step, Optimizer.LearningRate, UpdateNorms(), members.Sum)
                    : Diagnostics.Measure(step!, Optimizer.LearningRate, UpdateNorms());
            if (Optimizer.FirstNonFiniteGradient >= 0)
                throw step is null
                    ? new NonFiniteValueException($"step {Optimizer.StepCount} (epoch {epoch}, batch {loader.BatchIndex + 1}): a summed gradient is not finite",
                        DivergenceRemedy.LowerLearningRateOrClip, epoch, Optimizer.StepCount, loader.BatchIndex + 1)
                    : NonFiniteValueException.LocateBackward(step, epoch, loader.BatchIndex, Optimizer.StepCount);
            if (step is not null)
            {
                double d = step.LossDivisor;
                lossSum += double.CreateTruncating(step.Loss.Value.Data[0]) * d;
                divisorSum += d;
                step.Measure(_trainMetrics, loader.CurrentY, n);
            }
            else weightless?.Measure(_trainMetrics, loader.CurrentY, n);
            globalSeen += loader.GlobalBatchSize;
            batches++;
            onBatch?.Invoke((int)globalSeen);
        }
        if (Parallel is { } group)
        {
            // the epoch's figures over all members' shares; the running statistics of batch norms as rank 0's
            Span<double> totals = [lossSum, divisorSum];
            group.Sum(totals);
            (lossSum, divisorSum) = (totals[0], totals[1]);
            _trainMetrics.Reduce(v => group.Sum(v));
            group.BroadcastBuffers(Network);
            // after sharded steps each member's optimizer state is current in its own block only: gather it, so that
            // rank 0's checkpoint (and every member's state) is whole
            if (_stateScattered) group.AllGatherOptimizerState(Optimizer, Network.Gradients.Complete());
            _stateScattered = false;
        }
        LastTrainMetrics = _trainMetrics.Results();
        return (divisorSum > 0 ? lossSum / divisorSum : 0, _trainMetrics.Headline, Options.ClipNorm > 0 ? gradNormSum / Math.Max(1, batches) : null);
    }

    // whether the optimizer's parameters are the network's parameter buffer, in its order (no parameter listed twice)
    private readonly bool _flatParameters;
    // whether sharded steps have left each member's optimizer state current in its own block only (see TrainEpoch)
    private bool _stateScattered;
    private T[]? _stateStaging;

    /// <summary>
    /// Seeds every layer's random draws (dropout) from the run's seed and the layer's index before each step, at the
    /// steps already taken: step k draws mask k of each layer, however many tapes were recorded (each recording is a
    /// forward pass that draws too), so a resumed run draws what an uninterrupted one would.
    /// </summary>
    private void SeedRandomLayers()
    {
        // in data-parallel training each member draws its own masks for its own rows
        ulong member = Parallel is { Rank: > 0 } p ? (ulong)p.Rank * 0xD1B54A32D192ED03UL : 0;
        for (int i = 0; i < Network.Layers.Count; i++)
            Network.Layers[i].SeedRandom(LayerSeed(Options.Seed, i) ^ member, Optimizer.StepCount);
    }

    /// <summary>A 64-bit seed for layer <paramref name="index"/> of a run seeded with <paramref name="seed"/> (SplitMix64 of both).</summary>
    public static ulong LayerSeed(int seed, int index)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)index) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private void SnapshotWeights()
    {
        // a layer without a weight gets an empty snapshot: its update norm is 0
        _weightSnapshots ??= Network.Layers.Select(l => new Tensor<T>(l.MainWeight()?.Value.ShapeArray ?? [0])).ToArray();
        for (int i = 0; i < Network.Layers.Count; i++) Network.Layers[i].MainWeight()?.Value.Span.CopyTo(_weightSnapshots[i].Span);
    }

    private double[] UpdateNorms()
    {
        var norms = new double[Network.Layers.Count];
        for (int i = 0; i < norms.Length; i++)
        {
            if (Network.Layers[i].MainWeight() is not { } weight) continue;
            var w = weight.Value.Span;
            var old = _weightSnapshots![i].Span;
            System.Numerics.Tensors.TensorPrimitives.Subtract(w, old, old);
            norms[i] = Diagnostics.Norm<T>(old);
        }
        return norms;
    }

    /// <summary>Mean loss and the headline metric (accuracy for classification) on a data set, in batches, without touching the parameters.</summary>
    public (double loss, double accuracy) Evaluate(LabeledData data, int batchSize = 1000)
    {
        var r = Measure(Network, data, Objective, batchSize, _steps, context: Context);
        return (r.Loss, r.Metrics.Headline);
    }

    /// <summary>Mean loss and every metric of the task on a data set.</summary>
    public Evaluation Measure(LabeledData data, int batchSize = 1000)
    {
        if (Parallel is not { } parallel) return Measure(Network, data, Objective, batchSize, _steps, context: Context);
        // each member measures its contiguous share of the rows; the sums add up to the whole data's
        // (read in place: a copy of the share took fresh memory every epoch, which costs more than the forward pass on a
        // VM that faults each new page in from the host; the evaluation took twice the one process's time)
        var (start, count) = parallel.Share(data.Count);
        var local = MeasureRows(Network, data, start, count, Objective, batchSize, _steps, null, Context);
        Span<double> totals = [local.Loss * local.Divisor, local.Divisor];
        parallel.Sum(totals);
        local.Metrics.Reduce(v => parallel.Sum(v));
        return new Evaluation(totals[1] > 0 ? totals[0] / totals[1] : 0, local.Metrics, totals[1]);
    }

    /// <summary>
    /// The group this trainer is one member of, in data-parallel training (null: one process). Each member's loader must
    /// be sharded the same way (<see cref="BatchLoader.SetShard"/>); the members' gradients are summed every step, so
    /// every member takes the same optimizer step.
    /// </summary>
    public DataParallel<T>? Parallel { get; init; }

    /// <summary>
    /// In data-parallel training, whether each member updates only its own block of the parameters (ZeRO stage 1: a
    /// reduce-scatter of the gradients, the update of one block, an all-gather of the parameters) in place of every
    /// member updating all of them after an all-reduce: 1/N of the optimizer's work a member (Adam on the reference MNIST
    /// model: 186 µs a step at 1 thread) for the same bytes on the wire. By default, what the collective says
    /// (<see cref="Distributed.ICollective.ShardingPays"/>): on over MPI, whose ring reduce-scatter and all-gather cost what its
    /// all-reduce costs; off among threads. Setting it false keeps the all-reduce and the whole update on every member.
    /// Steps that need the whole summed gradient (gradient clipping, the diagnostics step) take the all-reduce either
    /// way; parameters listed twice (tied weights) never shard. Set it before training; every member must set it alike.
    /// </summary>
    public bool ShardsOptimizer
    {
        get => (_shardsOptimizer ?? Parallel?.Collective.ShardingPays ?? false) && _parameters.Length == Network.Gradients.Parameters.Count;
        set => _shardsOptimizer = value;
    }

    private bool? _shardsOptimizer;

    /// <summary>The mean softmax cross-entropy and the accuracy of a classifier over every row of <paramref name="data"/>.</summary>
    /// <param name="network">The network; it is put in evaluation mode (dropout off, batch norm's running statistics).</param>
    /// <param name="data">The rows, with class labels.</param>
    /// <param name="batchSize">The rows per forward pass; only memory depends on it.</param>
    /// <param name="cache">Recorded steps by batch size, reused across calls; null records new ones.</param>
    /// <param name="outputs">When given, receives the outputs, rows × outputs.</param>
    /// <param name="context">What the passes run on; null: <see cref="Kernels.ComputeContext.Default"/>.</param>
    public static (double loss, double accuracy) Evaluate(Sequential<T> network, LabeledData data, int batchSize = 1000,
        Dictionary<int, TrainingStep<T>>? cache = null, Tensor<T>? outputs = null, Kernels.ComputeContext? context = null)
    {
        var r = Measure(network, data, TrainingObjective.Classification, batchSize, cache, outputs, context);
        return (r.Loss, r.Metrics.Headline);
    }

    /// <summary>The mean loss and the task's metrics over every row of <paramref name="data"/> (its outputs copied to <paramref name="outputs"/> when given).</summary>
    public static Evaluation Measure(Sequential<T> network, LabeledData data, TrainingObjective objective, int batchSize = 1000,
        Dictionary<int, TrainingStep<T>>? cache = null, Tensor<T>? outputs = null, Kernels.ComputeContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        return MeasureRows(network, data, 0, data.Count, objective, batchSize, cache, outputs, context);
    }

    /// <summary><see cref="Measure(Sequential{T}, LabeledData, TrainingObjective, int, Dictionary{int, TrainingStep{T}}?, Tensor{T}?, Kernels.ComputeContext?)"/> over rows first … first + count − 1.</summary>
    private static Evaluation MeasureRows(Sequential<T> network, LabeledData data, int first, int count, TrainingObjective objective, int batchSize,
        Dictionary<int, TrainingStep<T>>? cache, Tensor<T>? outputs, Kernels.ComputeContext? context)
    {
        // each batch's mean loss times its divisor: the sum over rows, so that the result is the whole data's mean as
        // the loss defines it (for a class-weighted loss, Σ w·ℓ / Σ w, not the mean of the batches' means)
        double lossSum = 0, divisor = 0;
        var metrics = objective.Task.CreateMetrics(network.Outputs, objective.TargetScaling);
        ForEachBatch(network, data, first, count, objective, batchSize, cache, requireTargets: true, outputs, context, (step, start, n) =>
        {
            double d = step.LossDivisor;
            // rows that all weigh 0 (a class weight of 0): a mean of 0/0 that adds nothing to the sum
            if (d > 0) lossSum += double.CreateTruncating(step.Loss.Value.Data[0]) * d;
            divisor += d;
            step.Measure(metrics, data.Labels.AsSpan(start, n), n);
        });
        return new Evaluation(divisor > 0 ? lossSum / divisor : 0, metrics, divisor);
    }

    /// <summary>
    /// Raw outputs (logits) for every row, in order. Labels are not read: the rows need not have valid ones. Runs the
    /// compiled forward pass (<see cref="Nn.Inference.InferenceNetwork{T}"/>: no tape, weights packed once), whose
    /// outputs are the tape's evaluation outputs on all the rows at once, bit for bit, whatever
    /// <paramref name="batchSize"/>: the rows go in passes of about <paramref name="batchSize"/> (at most, when it is a
    /// multiple of 4), cut as the compiled network cuts a large batch, so that each row meets the kernels it meets in
    /// the whole (the last pass of 1000 + 1 rows, say, is not a product of one row).
    /// </summary>
    public static Tensor<T> Predict(Sequential<T> network, LabeledData data, int batchSize = 1000, Kernels.ComputeContext? context = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var outputs = new Tensor<T>(data.Count, network.Outputs);
        var compiled = Nn.Inference.InferenceNetwork<T>.Compile(network, context);
        int d = data.FeatureCount, c = network.Outputs;
        if (d != network.Inputs) throw new ArgumentException($"the data has {d} features per row but the network takes {network.Inputs}", nameof(data));
        var plan = Nn.Inference.PassPlan.For(data.Count, batchSize, compiled.Context.Tuning.TinyMacs);
        // float features feed a float model in place; another precision converts each pass as the tape's loader does
        bool inPlace = typeof(T) == typeof(float) && data.UnitBytes.IsEmpty;
        var row = inPlace ? [] : new T[Math.Max(1, plan.LargestPass) * d];
        for (int pass = 0, start = 0; pass < plan.Passes; pass++)
        {
            int n = plan.Rows(pass);
            if (n == 0) break;   // no rows
            ReadOnlySpan<T> input;
            if (inPlace) input = System.Runtime.InteropServices.MemoryMarshal.Cast<float, T>(data.Features.AsSpan(start * d, n * d));
            else { data.CopyRows(start, n, row.AsSpan(0, n * d)); input = row.AsSpan(0, n * d); }
            compiled.Predict(input, outputs.Span.Slice(start * c, n * c), n);
            start += n;
        }
        return outputs;
    }

    /// <summary>
    /// The forward pass over a data set in batches (one recorded step per batch size), copying the outputs into
    /// <paramref name="outputs"/> when given. Without <paramref name="requireTargets"/> the loss sees class 0 for every row.
    /// </summary>
    private static void ForEachBatch(Sequential<T> network, LabeledData data, int first, int count, TrainingObjective objective, int batchSize,
        Dictionary<int, TrainingStep<T>>? cache, bool requireTargets, Tensor<T>? outputs, Kernels.ComputeContext? context, Action<TrainingStep<T>, int, int>? onBatch)
    {
        network.SetTraining(false);   // dropout off, running statistics: evaluation and prediction see the model as deployed
        cache ??= [];
        int d = data.FeatureCount, c = network.Outputs;
        bool values = objective.Loss.Target == LossTarget.Values;
        if (values && requireTargets && (data.Targets is null || data.TargetCount != c))
            throw new ArgumentException($"the {objective.Task.Name} loss needs {c} target values per row; the data has {data.TargetCount}", nameof(data));
        var zeros = requireTargets ? null : new int[Math.Min(batchSize, Math.Max(1, count))];
        var zeroValues = values && !requireTargets ? new float[Math.Min(batchSize, Math.Max(1, count)) * c] : null;
        int end = first + count;
        // rows stored as bytes (MNIST) are converted a batch at a time into a buffer from the shared pool
        float[]? converted = data.UnitBytes.IsEmpty ? null : System.Buffers.ArrayPool<float>.Shared.Rent(Math.Min(batchSize, Math.Max(1, count)) * d);
        try
        {
            for (int start = first; start < end; start += batchSize)
            {
                int n = Math.Min(batchSize, end - start);
                if (!cache.TryGetValue(n, out var step)) cache[n] = step = new TrainingStep<T>(network, n, objective, context);
                ReadOnlySpan<float> x;
                if (converted is null) x = data.Features.AsSpan(start * d, n * d);
                else { data.CopyRows<float>(start, n, converted); x = converted.AsSpan(0, n * d); }
                if (values) step.Load(x, zeroValues is null ? data.Targets.AsSpan(start * c, n * c) : zeroValues.AsSpan(0, n * c));
                else step.Load(x, zeros is null ? data.Labels.AsSpan(start, n) : zeros.AsSpan(0, n));
                step.Tape.Forward();
                if (outputs is not null) step.Logits.Data.Slice(0, n * c).CopyTo(outputs.Data.Slice((start - first) * c, n * c));
                onBatch?.Invoke(step, start, n);
            }
        }
        finally
        {
            if (converted is not null) System.Buffers.ArrayPool<float>.Shared.Return(converted);
        }
    }
}

/// <summary>A data set's mean loss and the task's metrics.</summary>
/// <param name="Loss">The mean loss over the rows as the loss defines its mean: a class-weighted cross-entropy divides by
/// the rows' summed class weights (PyTorch's semantics), the others by the rows (times the outputs, where it counts them).</param>
/// <param name="Metrics">The task's metrics over the rows (accuracy, R², … as <see cref="TrainingTask"/> defines them).</param>
/// <param name="Divisor">What <paramref name="Loss"/> was divided by (to combine evaluations of several shares).</param>
public sealed record Evaluation(double Loss, TaskMetrics Metrics, double Divisor = 0);
