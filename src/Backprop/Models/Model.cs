using System.Numerics;
using Backprop.Core;
using Backprop.Data;
using Backprop.Explain;
using Backprop.Health;
using Backprop.Interop;
using Backprop.IO;
using Backprop.Kernels;
using Backprop.Nn;
using Backprop.Nn.Inference;
using Backprop.Ops;
using Backprop.Problems;
using Backprop.Training;

namespace Backprop.Models;

/// <summary>
/// Where a float32 <see cref="Model{T}"/> starts: built layer by layer, loaded from a model file, or imported from PyTorch.
/// </summary>
/// <example>
/// <code>
/// var model = Model.Build().Input(4).Dense(16, "relu").Output(3).ForClassification();
/// model.Fit(features, labels, new FitOptions { Epochs = 100, LearningRate = 0.01 });
/// int species = model.PredictClass([5.1f, 3.5f, 1.4f, 0.2f]);
/// </code>
/// </example>
public static class Model
{
    /// <summary>Starts describing a network: <c>Model.Build().Input(4).Dense(16, "relu").Output(3).ForClassification()</c>.</summary>
    public static ModelBuilder Build() => new();

    /// <summary>Loads a float32 model file (one the CLI's <c>train</c> wrote, or <see cref="Model{T}.Save"/>).</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is damaged or not a model (the message names the field).</exception>
    public static Model<float> Load(string path) => Model<float>.Load(path);

    /// <summary>
    /// A float32 classifier from a PyTorch <c>nn.Sequential</c> state dict saved as safetensors, with one activation per
    /// hidden Linear layer (e.g. "relu" or "relu,tanh"), as <c>backprop import --activations</c> does.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not such a state dict.</exception>
    /// <exception cref="ArgumentException">The activations do not fit it.</exception>
    public static Model<float> ImportTorch(string path, string activations) => Model<float>.ImportTorch(path, activations);
}

/// <summary>
/// A network with what it needs to be used on new data: its task (classification, regression or multi-label), the
/// names of its outputs, and the standardisation of its inputs (and of regression targets). It trains on arrays, spans
/// or data files (<see cref="Fit(float[,], int[], FitOptions?, CancellationToken)"/>), measures
/// (<see cref="Evaluate(float[,], int[])"/>), predicts from many threads at once (<see cref="Predict(float[,])"/>),
/// saves the CLI's model files, exports ONNX and explains its gradients.
/// </summary>
/// <typeparam name="T">The element type of the network: float (the default) or double.</typeparam>
/// <remarks>
/// <para>
/// Thread safety: <c>Predict</c>, <c>PredictClass</c>, <c>Evaluate</c>, <c>Explain</c> and <c>Diagnose</c> may run on any
/// number of threads at once, also while a <c>Fit</c> runs: each call works on its own buffers (and tape) and reads the
/// parameters only. Predictions run the compiled forward pass (<see cref="InferenceNetwork{T}"/>), standardised as
/// training and the CLI standardise, so they give the bits <c>backprop predict</c> gives; a warm call allocates nothing.
/// A <c>Fit</c> trains a copy of the network and puts it in place when it completes, so a concurrent prediction sees
/// the model before or after the fit, never half-way. Fits run one at a time.
/// </para>
/// <para>
/// Failures: a <c>Fit</c> that throws (bad data, a cancellation, a divergence) leaves the model as it was before the
/// call; the checkpoint of its last complete epoch, when it wrote checkpoints, is left as it was and resumes.
/// </para>
/// </remarks>
public sealed class Model<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly object _fitGate = new();
    private volatile State _state;

    /// <summary>What the model is at one moment; a fit replaces it whole, so readers see one consistent state.</summary>
    private sealed record State(Sequential<T> Network, string[] LabelNames, Standardizer? Standardizer, Standardizer? TargetScaling, string[]? LabelColumns,
        string[]? FeatureNames = null)
    {
        private volatile InferenceNetwork<T>? _compiled;

        /// <summary>
        /// The network compiled for prediction (on <see cref="ComputeContext.Default"/>, as the CLI's predict runs it),
        /// made at the first prediction that needs it. Two threads that both find none compile one each, and either serves.
        /// </summary>
        public InferenceNetwork<T> Compiled => _compiled ?? (_compiled = InferenceNetwork<T>.Compile(Network));

        /// <summary>Drops the compiled network: the network's parameters may change (it was handed out).</summary>
        public void Recompile() => _compiled = null;
    }

    /// <summary>Wraps a network (made on the tape, say) as a model for <paramref name="task"/>.</summary>
    /// <param name="network">The network; the model owns it from now on (a fit replaces it with a trained copy).</param>
    /// <param name="task">What the outputs are: <see cref="TrainingTask.Classification"/>, <see cref="TrainingTask.Regression"/> or <see cref="TrainingTask.MultiLabel"/>.</param>
    /// <param name="labelNames">One name per output (class, target or label), no two alike; null: "0", "1", ….</param>
    /// <param name="standardizer">The standardisation of the inputs; null: none yet (a fit makes one, see <see cref="FitOptions.Standardize"/>).</param>
    /// <param name="targetScaling">The standardisation of regression targets; null: none yet.</param>
    /// <param name="labelColumns">The CSV columns the targets come from; null: the default ("label", else the last).</param>
    public Model(Sequential<T> network, TrainingTask task, IReadOnlyList<string>? labelNames = null, Standardizer? standardizer = null,
        Standardizer? targetScaling = null, IReadOnlyList<string>? labelColumns = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(task);
        var names = labelNames?.ToArray() ?? [.. Enumerable.Range(0, network.Outputs).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];
        if (names.Length != network.Outputs)
            throw new ArgumentException($"{names.Length} label names for a network of {network.Outputs} outputs", nameof(labelNames));
        CheckLabelNames(names, nameof(labelNames));
        if (standardizer is not null && standardizer.FeatureCount != network.Inputs)
            throw new ArgumentException($"the standardizer has {standardizer.FeatureCount} features but the network takes {network.Inputs}", nameof(standardizer));
        if (targetScaling is not null && targetScaling.FeatureCount != network.Outputs)
            throw new ArgumentException($"the target scaling has {targetScaling.FeatureCount} targets but the network gives {network.Outputs}", nameof(targetScaling));
        network.SetTraining(false);
        Task = task;
        _state = new State(network, names, standardizer, targetScaling, labelColumns?.ToArray());
    }

    /// <summary>What the outputs are, which loss trains them and which metrics measure them.</summary>
    public TrainingTask Task { get; }

    /// <summary>Where layer kinds and activations are looked up when the model is saved, loaded or explained.</summary>
    public Catalog Catalog { get; init; } = Catalog.Default;

    /// <summary>The network (the trained one, after a fit). Read it freely; change its parameters only when no fit runs.</summary>
    /// <remarks>
    /// Predictions run a compiled snapshot of the network (<see cref="InferenceNetwork{T}"/>), made at the first
    /// prediction after a fit, or after the network was last read from this property: a change made through the network
    /// this returns is seen by the next prediction, but not one made through a reference kept from before a prediction.
    /// </remarks>
    public Sequential<T> Network
    {
        get
        {
            var s = _state;
            s.Recompile();   // the caller may change the parameters
            return s.Network;
        }
    }

    /// <summary>One name per output: the class names (classification), or the target or label names.</summary>
    public IReadOnlyList<string> LabelNames => _state.LabelNames;

    /// <summary>The CSV feature columns the model was trained on, in input order, by which <see cref="Evaluate(string)"/>
    /// and <see cref="Save"/>'s file match a CSV's columns; null: none recorded (inputs by position).</summary>
    public IReadOnlyList<string>? FeatureNames => _state.FeatureNames;

    /// <summary>The standardisation applied to every input row before the network; null: none.</summary>
    public Standardizer? Standardizer => _state.Standardizer;

    /// <summary>The standardisation of regression targets (predictions are mapped back through it); null: none.</summary>
    public Standardizer? TargetScaling => _state.TargetScaling;

    /// <summary>Features per input row.</summary>
    public int Inputs => _state.Network.Inputs;

    /// <summary>Outputs per row: classes, targets or labels.</summary>
    public int Outputs => _state.Network.Outputs;

    /// <summary>The network as an architecture spec (the CLI's <c>--arch</c>), e.g. "4-16:relu-3".</summary>
    public string Architecture => ArchitectureSpec.Of(_state.Network).ToString();

    /// <summary>"classification 4-16:relu-3 (131 parameters)".</summary>
    public override string ToString() => $"{Task.Name} {Architecture} ({_state.Network.ParameterCount} parameters)";

    // ---------------------------------------------------------------- loading and saving

    /// <summary>Loads a model file (the CLI's format: safetensors with the architecture, labels and standardisation).</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is damaged, hostile or not a model (the message names the field).</exception>
    public static Model<T> Load(string path, Catalog? catalog = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        catalog ??= Catalog.Default;
        try
        {
            var file = ModelFile.Load<T>(path, catalog);
            var task = TaskMetadata.Read(file.Metadata, path);
            var model = new Model<T>(file.Network, task.Task, file.LabelNames, file.Standardizer, task.TargetScaling, task.LabelColumns) { Catalog = catalog };
            model._state = model._state with { FeatureNames = file.FeatureNames };
            return model;
        }
        catch (DataFormatException e) { throw new InvalidDataException(e.Message, e); }
    }

    /// <summary>
    /// Saves the model as a model file that the CLI reads (<c>backprop evaluate --model</c>, <c>predict</c>, <c>export</c>),
    /// atomically: a failed save leaves an existing file as it was.
    /// </summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var s = _state;
        // a classifier's file without task entries reads its labels from the default column, as files always have
        var columns = s.LabelColumns ?? (Task == TrainingTask.Classification ? null : s.LabelNames);
        ModelFile.Save(path, s.Network, s.LabelNames, s.Standardizer,
            extraMetadata: columns is null ? null : TaskMetadata.Write(Task, columns, s.TargetScaling), featureNames: s.FeatureNames);
    }

    /// <summary>
    /// Writes the model as ONNX (Gemm and activation nodes, LayerNormalization, BatchNormalization; input "input" [batch,
    /// features], output "output" [batch, outputs] of raw outputs, dynamic batch; the standardisation in the metadata),
    /// atomically. ONNX Runtime reproduces <see cref="PredictRaw(ReadOnlySpan{float}, Span{float})"/> to 1e-5.
    /// </summary>
    public void ExportOnnx(string path, int opset = OnnxExport.DefaultOpset)
    {
        var s = _state;
        OnnxExport.Write(path, s.Network, opset, s.LabelNames, s.Standardizer);
    }

    /// <summary>
    /// A classifier from a PyTorch <c>nn.Sequential</c> state dict (safetensors) of Linear, LayerNorm, BatchNorm1d and
    /// Dropout modules, with one activation per hidden Linear (e.g. "relu"); it reproduces PyTorch's eval-mode outputs.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not such a state dict.</exception>
    /// <exception cref="ArgumentException">The activations do not fit the state dict (one per hidden Linear, or one for all).</exception>
    public static Model<T> ImportTorch(string path, string activations, TrainingTask? task = null, Catalog? catalog = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        catalog ??= Catalog.Default;
        try { return new Model<T>(TorchImport.Import<T>(path, activations, catalog), task ?? TrainingTask.Classification) { Catalog = catalog }; }
        catch (DataFormatException e) { throw new InvalidDataException(e.Message, e); }
        catch (ArgumentException e) when (e.ParamName is null) { throw new ArgumentException(e.Message, nameof(activations), e); }
    }

    // ---------------------------------------------------------------- training

    /// <summary>
    /// Trains a classifier on rows of features (one row per sample) and their class indices 0 … <see cref="Outputs"/> − 1,
    /// from the current weights (a fresh optimizer state, unless <see cref="FitOptions.ResumeFrom"/> names a checkpoint).
    /// </summary>
    /// <returns>The run's history (and, with a validation split, its validation metrics).</returns>
    /// <exception cref="ArgumentException">The data does not fit the model: lengths, width, NaN or ∞, labels out of range (the message names the parameter and the shapes).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> stopped the fit between two steps (the model is as before the call).</exception>
    public TrainingResult Fit(float[,] features, int[] labels, FitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(features);
        CheckWidth(features.GetLength(1), nameof(features));
        return Fit(Flatten(features), labels, options, cancellationToken);
    }

    /// <summary>Trains a classifier on jagged rows of features and their class indices.</summary>
    /// <inheritdoc cref="Fit(float[,], int[], FitOptions?, CancellationToken)"/>
    public TrainingResult Fit(float[][] features, int[] labels, FitOptions? options = null, CancellationToken cancellationToken = default) =>
        Fit(Flatten(features, nameof(features)), labels, options, cancellationToken);

    /// <summary>Trains a classifier on row-major features (<see cref="Inputs"/> per row) and one class index per row.</summary>
    /// <inheritdoc cref="Fit(float[,], int[], FitOptions?, CancellationToken)"/>
    public TrainingResult Fit(ReadOnlySpan<float> features, ReadOnlySpan<int> labels, FitOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (Task.Targets != TargetKind.Classes)
            throw new ArgumentException($"a {Task.Name} model trains on target values (float), not class labels", nameof(labels));
        var rows = Rows(features.Length, labels.Length, 1, nameof(features), nameof(labels));
        CheckFinite(features, nameof(features));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)Outputs)
                throw new ArgumentException($"labels[{i}] is {labels[i]}, outside the model's classes 0…{Outputs - 1}", nameof(labels));
        return FitData(new LabeledData(features.ToArray(), labels.ToArray(), Inputs), rows, options, cancellationToken);
    }

    /// <summary>Trains a regression or multi-label model on rows of features and rows of targets (<see cref="Outputs"/> per row; 0 or 1 for multi-label).</summary>
    /// <inheritdoc cref="Fit(float[,], int[], FitOptions?, CancellationToken)"/>
    public TrainingResult Fit(float[,] features, float[,] targets, FitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(targets);
        CheckWidth(features.GetLength(1), nameof(features));
        if (targets.GetLength(1) != Outputs)
            throw new ArgumentException($"targets is {targets.GetLength(0)}×{targets.GetLength(1)} but the model gives {Outputs} outputs per row", nameof(targets));
        return Fit(Flatten(features), Flatten(targets), options, cancellationToken);
    }

    /// <summary>Trains a regression or multi-label model on row-major features and targets.</summary>
    /// <inheritdoc cref="Fit(float[,], int[], FitOptions?, CancellationToken)"/>
    public TrainingResult Fit(ReadOnlySpan<float> features, ReadOnlySpan<float> targets, FitOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (Task.Targets == TargetKind.Classes)
            throw new ArgumentException("a classifier trains on class indices (int), not target values", nameof(targets));
        int rows = Rows(features.Length, targets.Length, Outputs, nameof(features), nameof(targets));
        CheckFinite(features, nameof(features));
        CheckFinite(targets, nameof(targets));
        if (Task.Targets == TargetKind.Binary)
            for (int i = 0; i < targets.Length; i++)
                if (targets[i] is not (0f or 1f))
                    throw new ArgumentException($"targets[{i / Outputs}, {i % Outputs}] is {targets[i]}: multi-label targets are 0 or 1", nameof(targets));
        return FitData(new LabeledData(features.ToArray(), targets.ToArray(), Outputs, Inputs), rows, options, cancellationToken);
    }

    /// <summary>Trains on rows in memory (raw features, not standardised; class labels, or targets for a regression or multi-label model).</summary>
    /// <inheritdoc cref="Fit(float[,], int[], FitOptions?, CancellationToken)"/>
    public TrainingResult Fit(LabeledData data, FitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        CheckWidth(data.FeatureCount, nameof(data));
        return data.Targets is null
            ? Fit(data.Features.AsSpan(), data.Labels.AsSpan(), options, cancellationToken)
            : Fit(data.Features.AsSpan(), data.Targets.AsSpan(), options, cancellationToken);
    }

    /// <summary>
    /// Trains on a data file as <c>backprop train --data</c> does: a CSV file (with a header; the label column is
    /// <see cref="FitOptions.LabelColumn"/>, "label", or the last) or a directory of MNIST IDX files, split into train,
    /// validation (<see cref="FitOptions.ValidationSplit"/>, default 15%) and test (20%) rows with the fit's seed, the
    /// features standardised with the training rows. The model takes the file's class names and standardisation; the
    /// result holds the test metrics. With the same options, seed and network it trains what the CLI trains, and its
    /// checkpoints resume with <c>backprop train --resume</c>.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is damaged, or its columns do not fit the model.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> stopped the fit between two steps.</exception>
    public TrainingResult Fit(string path, FitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new FitOptions();
        try
        {
            string full = Path.GetFullPath(path);
            var data = DataLoading.PrepareFor(full, new CsvTargets(options.LabelColumn?.Split(',', StringSplitOptions.TrimEntries), Task.Targets),
                options.Seed, options.ValidationSplit ?? 0.15);
            if (data.Test.Count == 0 && data.Kind == "csv")
                throw new InvalidDataException($"{path}: {data.Train.Count + data.Validation.Count} rows are too few for training and a held-out test split");
            if (data.Features != Inputs)
                throw new InvalidDataException($"{path} has {data.Features} features per row but the model takes {Inputs}");
            if (data.Classes != Outputs)
                throw new InvalidDataException($"{path} has {data.Classes} {(Task == TrainingTask.Classification ? "classes" : "targets")} but the model gives {Outputs} outputs");
            return Train(full, data, options, cancellationToken);
        }
        catch (DataFormatException e) { throw new InvalidDataException(e.Message, e); }
    }

    /// <summary>Splits off the validation rows, standardises, and trains.</summary>
    private TrainingResult FitData(LabeledData raw, int rows, FitOptions? options, CancellationToken cancellationToken)
    {
        options ??= new FitOptions();
        if (rows == 0) throw new ArgumentException("there are no rows to train on", "features");
        double validation = options.ValidationSplit ?? 0;
        if (!(validation >= 0 && validation < 1))
            throw new ArgumentOutOfRangeException(nameof(options), validation, "FitOptions.ValidationSplit must be in [0, 1)");
        var (train, held) = validation > 0
            ? DataSplit.Split(raw, validation, options.Seed, stratified: Task.Targets == TargetKind.Classes)
            : (raw, raw.Subset([]));
        if (train.Count == 0) throw new ArgumentException($"{rows} rows leave no training rows after a validation split of {validation}", "features");
        var s = _state;
        var std = s.Standardizer ?? (options.Standardize ? Standardizer.Fit(train) : null);
        var scaling = s.TargetScaling;
        if (Task.Targets == TargetKind.Values)
        {
            scaling ??= Standardizer.Fit(train.Targets, train.TargetCount);
            train = ScaleTargets(train, scaling);
            held = ScaleTargets(held, scaling);
        }
        LabeledData Prepare(LabeledData d) => std is null ? d : std.Apply(d);
        var empty = raw.Subset([]);
        var data = new PreparedData("arrays", Prepare(train), Prepare(held), empty, s.LabelNames, std)
        {
            Targets = Task.Targets, TargetScaling = scaling, LabelColumns = s.LabelColumns ?? [],
        };
        return Train("(arrays)", data, options, cancellationToken);
    }

    private static LabeledData ScaleTargets(LabeledData d, Standardizer scaling)
    {
        var t = d.Targets!.ToArray();
        scaling.Apply(t.AsSpan());
        return new LabeledData(d.Features, t, d.TargetCount, d.FeatureCount);
    }

    /// <summary>Runs the library's training loop on a copy of the network and puts the trained copy in place.</summary>
    private TrainingResult Train(string dataName, PreparedData data, FitOptions options, CancellationToken cancellationToken)
    {
        if (options.Threads < 0 || options.Threads > ComputeContext.MaxThreads)
            throw new ArgumentException($"Threads {options.Threads}: must be 0 (all cores) to {ComputeContext.MaxThreads}", nameof(options));
        if (options.Patience > 0 && data.Validation.Count == 0)
            throw new ArgumentException($"Patience {options.Patience}: early stopping needs validation rows (FitOptions.ValidationSplit above 0)", nameof(options));
        lock (_fitGate)
        {
            var s = _state;
            var job = new TrainingJob
            {
                Data = dataName, Architecture = ArchitectureSpec.Of(s.Network).ToString(), Task = Task.Name, Precision = TrainingJob.PrecisionOf<T>(),
                LabelColumn = data.LabelColumn, Loss = options.Loss, HuberDelta = options.HuberDelta, ClassWeights = options.ClassWeights,
                PosWeight = options.PosWeight, Options = options.ToTrainOptions(),
            };
            var resumed = options.ResumeFrom is { } from ? LoadCheckpoint(from) : null;
            ComputeContext? owned = options.Context is null && options.Threads > 0 ? new ComputeContext(options.Threads) : null;
            try
            {
                var run = TrainingRun<T>.Create(job, data, s.Network.Clone(), resumed, options.CheckpointPath, resumeSource: options.ResumeFrom ?? "checkpoint",
                    context: options.Context ?? owned, catalog: Catalog);
                IProgress<EpochReport>? epochs = options.Progress is null && options.OnEpoch is null ? null : new Reporter(options.Progress, options.OnEpoch);
                var result = run.Run(options.BatchProgress, epochs, cancellationToken);
                run.Network.SetTraining(false);
                _state = new State(run.Network, data.LabelNames, data.Standardizer, data.TargetScaling,
                    data.LabelColumns.Length > 0 ? data.LabelColumns : s.LabelColumns, data.FeatureNames ?? s.FeatureNames);
                return result;
            }
            catch (InvalidTrainingSettingException e) { throw new ArgumentException(e.Message, nameof(options), e); }
            catch (CheckpointMismatchException e) { throw new ArgumentException($"FitOptions.ResumeFrom {options.ResumeFrom}: {e.Message}", nameof(options), e); }
            finally { owned?.Dispose(); }
        }
    }

    private Checkpoint<T> LoadCheckpoint(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such checkpoint", path);
        try { return Checkpoint.Load<T>(path, Catalog); }
        catch (DataFormatException e) { throw new InvalidDataException(e.Message, e); }
    }

    /// <summary>Hands each epoch to the fit's <see cref="FitOptions.Progress"/> and <see cref="FitOptions.OnEpoch"/>.</summary>
    private sealed class Reporter(IProgress<EpochReport>? progress, Action<EpochReport>? callback) : IProgress<EpochReport>
    {
        /// <summary>Reports one finished epoch to both.</summary>
        public void Report(EpochReport value)
        {
            progress?.Report(value);
            callback?.Invoke(value);
        }
    }

    // ---------------------------------------------------------------- evaluation

    /// <summary>The loss and the task's metrics (accuracy and balanced accuracy for a classifier) on rows and their class indices.</summary>
    /// <exception cref="ArgumentException">The data does not fit the model, or has no rows.</exception>
    public ModelEvaluation Evaluate(float[,] features, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(features);
        CheckWidth(features.GetLength(1), nameof(features));
        return Evaluate(Flatten(features), labels);
    }

    /// <summary>The loss and the task's metrics on row-major features and class indices.</summary>
    /// <inheritdoc cref="Evaluate(float[,], int[])"/>
    public ModelEvaluation Evaluate(ReadOnlySpan<float> features, ReadOnlySpan<int> labels)
    {
        if (Task.Targets != TargetKind.Classes) throw new ArgumentException($"a {Task.Name} model is measured on target values, not class labels", nameof(labels));
        if (Rows(features.Length, labels.Length, 1, nameof(features), nameof(labels)) == 0)
            throw new ArgumentException("there are no rows to measure", nameof(features));
        CheckFinite(features, nameof(features));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)Outputs) throw new ArgumentException($"labels[{i}] is {labels[i]}, outside the model's classes 0…{Outputs - 1}", nameof(labels));
        return Measure(new LabeledData(features.ToArray(), labels.ToArray(), Inputs));
    }

    /// <summary>The loss and the task's metrics (R², RMSE and MAE in the targets' units; subset accuracy and macro F1) on rows and their targets.</summary>
    /// <inheritdoc cref="Evaluate(float[,], int[])"/>
    public ModelEvaluation Evaluate(float[,] features, float[,] targets)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(targets);
        CheckWidth(features.GetLength(1), nameof(features));
        if (Task.Targets == TargetKind.Classes) throw new ArgumentException("a classifier is measured on class indices, not target values", nameof(targets));
        if (targets.GetLength(1) != Outputs)
            throw new ArgumentException($"targets is {targets.GetLength(0)}×{targets.GetLength(1)} but the model gives {Outputs} outputs per row", nameof(targets));
        var x = Flatten(features);
        var t = Flatten(targets);
        if (Rows(x.Length, t.Length, Outputs, nameof(features), nameof(targets)) == 0)
            throw new ArgumentException("there are no rows to measure", nameof(features));
        CheckFinite(x, nameof(features));
        CheckFinite(t, nameof(targets));
        _state.TargetScaling?.Apply(t.AsSpan());
        return Measure(new LabeledData(x, t, Outputs, Inputs));
    }

    /// <summary>
    /// The loss and the task's metrics over every row of a data file, as <c>backprop evaluate</c> gives them: a CSV file
    /// (its columns found by name) or the test set of an MNIST directory.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is damaged or lacks the model's columns.</exception>
    public ModelEvaluation Evaluate(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var s = _state;
        try
        {
            var targets = new TaskMetadata(Task, s.LabelColumns, s.TargetScaling).Targets(s.LabelNames) with { FeatureNames = s.FeatureNames };
            var data = DataLoading.ForModel(path, targets, null, s.TargetScaling);
            if (data.FeatureCount != Inputs) throw new InvalidDataException($"{path} has {data.FeatureCount} features per row but the model takes {Inputs}");
            return Measure(s.Standardizer is null ? data : s.Standardizer.Apply(data), standardized: true);
        }
        catch (DataFormatException e) { throw new InvalidDataException(e.Message, e); }
    }

    private ModelEvaluation Measure(LabeledData data, bool standardized = false)
    {
        var s = _state;
        if (!standardized && s.Standardizer is not null) data = s.Standardizer.Apply(data);
        var objective = new TrainingObjective(Task, Task.DefaultLoss, null, s.TargetScaling);
        var r = Trainer<T>.Measure(s.Network, data, objective);
        return new ModelEvaluation(r.Loss, r.Metrics.Results(), data.Count);
    }

    // ---------------------------------------------------------------- prediction

    /// <summary>
    /// The model's answer for every row: class probabilities (softmax) for a classifier, values in the targets' units for
    /// a regression, one probability per label (sigmoid) for a multi-label model. Thread-safe.
    /// </summary>
    /// <exception cref="ArgumentException">A row is not <see cref="Inputs"/> wide, or holds NaN or ∞.</exception>
    public float[,] Predict(float[,] features)
    {
        ArgumentNullException.ThrowIfNull(features);
        CheckWidth(features.GetLength(1), nameof(features));
        int n = features.GetLength(0);
        var result = new float[n, Outputs];
        if (n == 0) return result;   // no element to take a reference to: result[0, 0] would be out of range
        Predict(Flatten(features), System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref result[0, 0], result.Length));
        return result;
    }

    /// <summary>The model's answer for one row (see <see cref="Predict(float[,])"/>). Thread-safe.</summary>
    /// <inheritdoc cref="Predict(float[,])"/>
    public float[] Predict(ReadOnlySpan<float> row)
    {
        CheckWidth(row.Length, nameof(row));
        var result = new float[Outputs];
        Predict(row, result);
        return result;
    }

    /// <summary>
    /// The model's answers for row-major <paramref name="features"/> (<see cref="Inputs"/> per row) into <paramref name="outputs"/>
    /// (<see cref="Outputs"/> per row). Thread-safe: every call has its own buffers.
    /// </summary>
    /// <inheritdoc cref="Predict(float[,])"/>
    public void Predict(ReadOnlySpan<float> features, Span<float> outputs)
    {
        int rows = RunNetwork(features, outputs, nameof(features), nameof(outputs), out var s);
        int c = Outputs;
        if (Task.Targets == TargetKind.Classes)
            for (int i = 0; i < rows; i++) Softmax(outputs.Slice(i * c, c));
        else if (Task.Targets == TargetKind.Binary)
            for (int k = 0; k < rows * c; k++) outputs[k] = 1f / (1f + MathF.Exp(-outputs[k]));
        else s.TargetScaling?.Invert(outputs[..(rows * c)]);
    }

    /// <summary>The network's raw outputs (logits) for row-major features, after the model's standardisation. Thread-safe.</summary>
    /// <inheritdoc cref="Predict(float[,])"/>
    public void PredictRaw(ReadOnlySpan<float> features, Span<float> outputs) => RunNetwork(features, outputs, nameof(features), nameof(outputs), out _);

    /// <summary>The most probable class of one row (a classifier). Thread-safe.</summary>
    /// <inheritdoc cref="Predict(float[,])"/>
    public int PredictClass(ReadOnlySpan<float> row)
    {
        RequireClassifier();
        CheckWidth(row.Length, nameof(row));
        int c = Outputs;
        // more classes than the stack should hold: a rented buffer, so a warm call still allocates nothing
        float[]? rented = c <= 256 ? null : System.Buffers.ArrayPool<float>.Shared.Rent(c);
        Span<float> outputs = rented is null ? stackalloc float[c] : rented.AsSpan(0, c);
        try
        {
            PredictRaw(row, outputs);
            return ArgMax(outputs);
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>The most probable class of every row (a classifier). Thread-safe.</summary>
    /// <inheritdoc cref="Predict(float[,])"/>
    public int[] PredictClass(float[,] features)
    {
        RequireClassifier();
        ArgumentNullException.ThrowIfNull(features);
        CheckWidth(features.GetLength(1), nameof(features));
        int n = features.GetLength(0), c = Outputs;
        var outputs = new float[n * c];
        PredictRaw(Flatten(features), outputs);
        var classes = new int[n];
        for (int i = 0; i < n; i++) classes[i] = ArgMax(outputs.AsSpan(i * c, c));
        return classes;
    }

    /// <summary>The name of the most probable class of one row (a classifier). Thread-safe.</summary>
    /// <inheritdoc cref="Predict(float[,])"/>
    public string PredictLabel(ReadOnlySpan<float> row) => LabelNames[PredictClass(row)];

    private int RunNetwork(ReadOnlySpan<float> features, Span<float> outputs, string featuresName, string outputsName, out State s)
    {
        s = _state;
        int d = s.Network.Inputs, c = s.Network.Outputs;
        if (features.Length % d != 0)
            throw new ArgumentException($"{features.Length} values do not make rows of {d} features", featuresName);
        int rows = features.Length / d;
        if (outputs.Length < rows * c)
            throw new ArgumentException($"{rows} rows need {rows * c} outputs ({rows}×{c}) but the span holds {outputs.Length}", outputsName);
        CheckFinite(features, featuresName);
        if (rows == 0) return 0;
        // The compiled network (no tape: nothing allocated once warm) on the inputs standardised by the Standardizer's
        // own Apply, as training, evaluate and the CLI's predict standardise (x − mean)·(1/std): (x − mean)/std can
        // differ in the last bit. The buffers are this call's, rented: nothing shared is written.
        var compiled = s.Compiled;
        int n = rows * d;
        float[] standardized = System.Buffers.ArrayPool<float>.Shared.Rent(n);
        T[]? converted = null, raw = null;
        try
        {
            var xf = standardized.AsSpan(0, n);
            features[..n].CopyTo(xf);
            s.Standardizer?.Apply(xf);
            if (typeof(T) == typeof(float))
            {
                // a float network reads the standardised floats and writes the caller's outputs in place
                compiled.Predict(System.Runtime.InteropServices.MemoryMarshal.Cast<float, T>(xf),
                    System.Runtime.InteropServices.MemoryMarshal.Cast<float, T>(outputs[..(rows * c)]), rows);
                return rows;
            }
            converted = System.Buffers.ArrayPool<T>.Shared.Rent(n);
            raw = System.Buffers.ArrayPool<T>.Shared.Rent(rows * c);
            for (int k = 0; k < n; k++) converted[k] = T.CreateTruncating(xf[k]);
            compiled.Predict(converted.AsSpan(0, n), raw.AsSpan(0, rows * c), rows);
            for (int k = 0; k < rows * c; k++) outputs[k] = float.CreateTruncating(raw[k]);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(standardized);
            if (converted is not null) System.Buffers.ArrayPool<T>.Shared.Return(converted);
            if (raw is not null) System.Buffers.ArrayPool<T>.Shared.Return(raw);
        }
        return rows;
    }

    private void RequireClassifier()
    {
        if (Task != TrainingTask.Classification) throw new InvalidOperationException($"a {Task.Name} model has no classes: use Predict");
    }

    private static void Softmax(Span<float> row)
    {
        float max = float.NegativeInfinity;
        foreach (var v in row) max = MathF.Max(max, v);
        float sum = 0;
        for (int j = 0; j < row.Length; j++) sum += row[j] = MathF.Exp(row[j] - max);
        for (int j = 0; j < row.Length; j++) row[j] /= sum;
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
        return best;
    }

    // ---------------------------------------------------------------- explain and diagnose

    /// <summary>
    /// The backpropagation derivation of one gradient for a batch (a few rows, with their class indices): the forward
    /// pass, each δ with its rule, shapes and numbers, checked against the tape and by finite differences, in float64,
    /// as <c>backprop explain</c> prints it for a problem file. The loss is the task's, mean-reduced.
    /// </summary>
    /// <param name="features">The batch (standardised by the model first).</param>
    /// <param name="labels">The batch's class indices.</param>
    /// <param name="wrt">The gradient: layers.I.weight, layers.I.bias, layers.I.output or input.</param>
    /// <param name="format">Text, Markdown or LaTeX.</param>
    /// <exception cref="ArgumentException">The batch does not fit the model, or <paramref name="wrt"/> names no value.</exception>
    public string Explain(float[,] features, int[] labels, string wrt = "layers.0.weight", DerivationFormat format = DerivationFormat.Text)
    {
        ArgumentNullException.ThrowIfNull(wrt);
        var problem = ProblemFor(features, labels, null);
        return DerivationRenderer.Render(ExplainFor(problem, wrt), format);
    }

    /// <summary>The derivation of one gradient for a batch of rows and their targets (regression, multi-label).</summary>
    /// <inheritdoc cref="Explain(float[,], int[], string, DerivationFormat)"/>
    public string Explain(float[,] features, float[,] targets, string wrt = "layers.0.weight", DerivationFormat format = DerivationFormat.Text)
    {
        ArgumentNullException.ThrowIfNull(wrt);
        var problem = ProblemFor(features, null, targets);
        return DerivationRenderer.Render(ExplainFor(problem, wrt), format);
    }

    // an unknown gradient name is an error in the caller's argument: the same exception type, carrying wrt's name
    private static Derivation ExplainFor(Problem<double> problem, string wrt)
    {
        try { return Explainer.Explain(problem, wrt); }
        catch (UnknownValueException e) when (e.ParamName is null) { throw e.WithParamName(nameof(wrt)); }
    }

    /// <summary>
    /// Per-layer gradient health on a batch (‖∂L/∂W‖, ‖W‖, ‖∂L/∂h‖, dead and saturated units) and a verdict such as
    /// "healthy" or "vanishing gradients", as <c>backprop diagnose --model</c> gives it.
    /// </summary>
    /// <inheritdoc cref="Explain(float[,], int[], string, DerivationFormat)"/>
    public HealthReport Diagnose(float[,] features, int[] labels) => ProblemFor(features, labels, null).Diagnose();

    /// <summary>Per-layer gradient health on a batch of rows and their targets (regression, multi-label).</summary>
    /// <inheritdoc cref="Explain(float[,], int[], string, DerivationFormat)"/>
    public HealthReport Diagnose(float[,] features, float[,] targets) => ProblemFor(features, null, targets).Diagnose();

    /// <summary>The model's layers (a float64 copy, in evaluation mode), a standardised batch and the task's loss as a problem.</summary>
    private Problem<double> ProblemFor(float[,] features, int[]? labels, float[,]? targets)
    {
        ArgumentNullException.ThrowIfNull(features);
        CheckWidth(features.GetLength(1), nameof(features));
        int n = features.GetLength(0), d = Inputs, c = Outputs;
        if (n == 0) throw new ArgumentException("the batch has no rows", nameof(features));
        var x = Flatten(features);
        CheckFinite(x, nameof(features));
        var s = _state;
        s.Standardizer?.Apply(x.AsSpan());
        double[][] input = [.. Enumerable.Range(0, n).Select(i => x.AsSpan(i * d, d).ToArray().Select(v => (double)v).ToArray())];
        double[][]? values = null;
        if (Task.Targets == TargetKind.Classes)
        {
            if (targets is not null) throw new ArgumentException("a classifier is explained on class indices (int[]), not target values", nameof(targets));
            ArgumentNullException.ThrowIfNull(labels);
            Rows(x.Length, labels.Length, 1, nameof(features), nameof(labels));
            for (int i = 0; i < n; i++)
                if ((uint)labels[i] >= (uint)c) throw new ArgumentException($"labels[{i}] is {labels[i]}, outside the model's classes 0…{c - 1}", nameof(labels));
        }
        else
        {
            if (targets is null) throw new ArgumentException($"a {Task.Name} model is explained on target values", nameof(labels));
            if (targets.GetLength(0) != n || targets.GetLength(1) != c)
                throw new ArgumentException($"targets is {targets.GetLength(0)}×{targets.GetLength(1)} but features has {n} rows and the model {c} outputs", nameof(targets));
            var t = Flatten(targets);
            CheckFinite(t, nameof(targets));
            s.TargetScaling?.Apply(t.AsSpan());
            values = [.. Enumerable.Range(0, n).Select(i => t.AsSpan(i * c, c).ToArray().Select(v => (double)v).ToArray())];
        }
        // a float64 copy: the problem's tape writes gradients into its network's parameters, never into the model's
        var network = s.Network.Cast<double>();
        network.SetTraining(false);
        var spec = new ProblemSpec($"model {Architecture} on {n} rows", [], input, Task.DefaultLoss, Reduction.Mean, values,
            Task.Targets == TargetKind.Classes ? labels![..n] : null, null);
        return new Problem<double>(spec, network, Catalog);
    }

    // ---------------------------------------------------------------- argument checks

    /// <summary>Refuses label names that a model file cannot hold (a null name, or a name given twice): Save wrote them and Load refused the file.</summary>
    internal static void CheckLabelNames(IReadOnlyList<string> names, string paramName)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++)
        {
            if (names[i] is not { } name) throw new ArgumentNullException(paramName, $"{paramName}[{i}] is null");
            if (!seen.Add(name)) throw new ArgumentException($"{paramName} names '{name}' twice", paramName);
        }
    }

    private void CheckWidth(int width, string name)
    {
        if (width != Inputs) throw new ArgumentException($"the rows have {width} features but the model takes {Inputs}", name);
    }

    /// <summary>The number of rows, checking that features and targets agree on it.</summary>
    private int Rows(int featureValues, int targetValues, int perRow, string featuresName, string targetsName)
    {
        int d = Inputs;
        if (featureValues % d != 0) throw new ArgumentException($"{featureValues} values do not make rows of {d} features", featuresName);
        int rows = featureValues / d;
        if (targetValues != rows * perRow)
            throw new ArgumentException(perRow == 1
                ? $"features has {rows} rows ({rows}×{d}) but {targetsName} has {targetValues} entries"
                : $"features has {rows} rows ({rows}×{d}) but {targetsName} has {targetValues} values ({(double)targetValues / perRow}×{perRow})", targetsName);
        return rows;
    }

    private static void CheckFinite(ReadOnlySpan<float> values, string name)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) throw new ArgumentException($"{name}[{i}] is {values[i]}: the data must be finite numbers", name);
    }

    private static float[] Flatten(float[,] values)
    {
        var flat = new float[values.Length];
        if (flat.Length > 0) System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(ref values[0, 0], values.Length).CopyTo(flat);
        return flat;
    }

    private float[] Flatten(float[][] rows, string name)
    {
        ArgumentNullException.ThrowIfNull(rows, name);
        int d = Inputs;
        var flat = new float[(long)rows.Length * d];
        for (int i = 0; i < rows.Length; i++)
        {
            if (rows[i] is not { } row) throw new ArgumentNullException(name, $"{name}[{i}] is null");
            if (row.Length != d) throw new ArgumentException($"{name}[{i}] has {row.Length} features but the model takes {d}", name);
            row.CopyTo(flat, (long)i * d);
        }
        return flat;
    }
}

/// <summary>A model's loss and its task's metrics on some rows (see <see cref="TrainingTask.MetricNames"/>).</summary>
/// <param name="Loss">The task's mean loss (cross-entropy, mean squared error of standardised targets, or binary cross-entropy).</param>
/// <param name="Metrics">The task's metrics by name: accuracy and balanced_accuracy; r2, rmse and mae; subset_accuracy and f1_macro.</param>
/// <param name="Rows">The rows measured.</param>
public sealed record ModelEvaluation(double Loss, IReadOnlyList<Metric> Metrics, int Rows)
{
    /// <summary>The metric called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The task has no such metric.</exception>
    public double this[string name] => Metrics.FirstOrDefault(m => m.Name == name) is { Name: not null } m ? m.Value
        : throw new KeyNotFoundException($"no metric '{name}' (the task's: {string.Join(", ", Metrics.Select(x => x.Name))})");

    /// <summary>The task's headline metric: accuracy, R² or subset accuracy.</summary>
    public double Headline => Metrics.Count > 0 ? Metrics[0].Value : double.NaN;
}
