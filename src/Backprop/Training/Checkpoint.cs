using System.Numerics;
using System.Text.Json;
using Backprop.Data;
using Backprop.IO;
using Backprop.Nn;

namespace Backprop.Training;

/// <summary>
/// A model file with the optimizer's state tensors (optimizer.*) and the training progress in __metadata__.checkpoint.
/// Written atomically after every epoch, so a killed run leaves the last complete epoch loadable.
/// </summary>
public sealed class Checkpoint<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The network with its weights at the end of <see cref="Epoch"/>, its label names and standardisation.</summary>
    public required SavedModel<T> Model { get; init; }
    /// <summary>The file read, which still holds the optimizer's state tensors for <see cref="RestoreOptimizer"/>.</summary>
    public required SafeTensorsFile File { get; init; }
    /// <summary>The last completed epoch (from 1); a resumed run continues with the next.</summary>
    public required int Epoch { get; init; }
    /// <summary>The optimizer steps taken so far, which the learning-rate schedule and Adam's bias correction go by.</summary>
    public required long Step { get; init; }
    /// <summary>The optimizer's registry name; the resumed run's must be the same.</summary>
    public required string Optimizer { get; init; }
    /// <summary>The results of the epochs so far, first epoch first.</summary>
    public required List<EpochResult> History { get; init; }
    /// <summary>The lowest validation loss so far, which early stopping compares against (1e308 when there was none).</summary>
    public double BestValidationLoss { get; init; }
    /// <summary>The run's seed; null in checkpoints written before it was recorded.</summary>
    public int? Seed { get; init; }
    /// <summary>The run's batch size; null in checkpoints written before it was recorded.</summary>
    public int? BatchSize { get; init; }
    /// <summary>The run's --epochs and --schedule: a cosine rate is a function of the total, so resuming needs the same.</summary>
    public int? Epochs { get; init; }
    /// <summary>The run's learning-rate schedule; null in checkpoints written before it was recorded.</summary>
    public string? Schedule { get; init; }
    /// <summary>A fingerprint of the training rows (see <see cref="Checkpoint.DataFingerprint"/>).</summary>
    public string? Data { get; init; }
    /// <summary>Epochs since the validation loss last improved, so that early stopping's patience carries across a resume.</summary>
    public int EpochsSinceBest { get; init; }
    /// <summary>The run's whole configuration; null in checkpoints written before it was recorded.</summary>
    public TrainingJob? Job { get; init; }

    /// <summary>The checkpoint's layer sizes, input first.</summary>
    public int[] Layers => ModelFile.ArchitectureOf(Model.Network).Sizes;

    /// <summary>Copies the optimizer's state and step count from the checkpoint; the optimizer must be of the checkpoint's kind.</summary>
    public void RestoreOptimizer(Optimizer<T> optimizer, string source)
    {
        if (optimizer.Name != Optimizer)
            throw new CheckpointMismatchException(TrainingSetting.Optimizer, Optimizer, optimizer.Name, CheckpointMismatchReason.Fixed);
        foreach (var (name, tensor) in optimizer.State())
        {
            string key = "optimizer." + name;
            if (!File.Contains(key)) throw new DataFormatException($"{source}: tensor {key} is missing");
            var t = File.GetTensor<T>(key);
            if (!t.SameShape(tensor.Shape)) throw new DataFormatException($"{source}: {key} is {t.ShapeString}, expected {tensor.ShapeString}");
            t.Span.CopyTo(tensor.Span);
        }
        optimizer.StepCount = Step;
    }
}

/// <summary>
/// Writes and reads training checkpoints (<see cref="Checkpoint{T}"/>): a model file plus optimizer.* state tensors and
/// the progress, as JSON, in __metadata__.checkpoint; and works out the job a resumed run continues.
/// </summary>
public static class Checkpoint
{
    /// <summary>
    /// Seed and batch size fix the data split and the batch order, and the data fingerprint the rows themselves: a
    /// resumed run must use the same ones. Epochs and schedule fix a cosine rate's course.
    /// </summary>
    internal sealed record Progress(int Epoch, long Step, string Optimizer, double BestValidationLoss, int EpochsSinceBest, List<EpochResult> History,
        int? Seed = null, int? BatchSize = null, int? Epochs = null, string? Schedule = null, string? Data = null, TrainingJob? Job = null);

    /// <summary>What a run was, beyond its weights and optimizer state: its configuration and its data's fingerprint.</summary>
    public sealed record RunIdentity(TrainingJob Job, string Data)
    {
        /// <summary>The job's seed, which fixes the split and the batch order.</summary>
        public int Seed => Job.Options.Seed;
        /// <summary>The job's batch size, which fixes the batch order.</summary>
        public int BatchSize => Job.Options.BatchSize;
        /// <summary>The job's total epochs, which a cosine rate spans.</summary>
        public int Epochs => Job.Options.Epochs;
        /// <summary>The job's learning-rate schedule.</summary>
        public string Schedule => Job.Options.Schedule;
    }

    /// <summary>SHA-256 (first 16 hex digits) of the training rows' features and labels, in split order.</summary>
    public static string DataFingerprint(LabeledData train)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        if (train.UnitBytes.IsEmpty) sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(train.Features.AsSpan()));
        else
        {
            // rows stored as bytes: the same hash as their floats, converted a block of rows at a time
            int d = train.FeatureCount, block = Math.Max(1, 4096 / d);
            var floats = new float[block * d];
            for (int first = 0; first < train.Count; first += block)
            {
                int n = Math.Min(block, train.Count - first);
                train.CopyRows<float>(first, n, floats);
                sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan(0, n * d)));
            }
        }
        sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(train.Labels.AsSpan()));
        return Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>Writes a checkpoint at <paramref name="path"/>, atomically: a run killed mid-write leaves the previous one intact.</summary>
    /// <param name="path">The destination file; its directory must exist.</param>
    /// <param name="net">The network at the end of <paramref name="epoch"/>.</param>
    /// <param name="optimizer">The optimizer whose state tensors and step count are saved.</param>
    /// <param name="epoch">The epoch just completed, from 1.</param>
    /// <param name="history">The results of every epoch so far.</param>
    /// <param name="bestVal">The lowest validation loss so far (infinity when none: stored as 1e308, which JSON can hold).</param>
    /// <param name="sinceBest">Epochs since the validation loss last improved.</param>
    /// <param name="labels">The class or target names, in output order.</param>
    /// <param name="std">The input standardisation; null when none.</param>
    /// <param name="run">The run's configuration and data fingerprint.</param>
    public static void Save<T>(string path, Sequential<T> net, Optimizer<T> optimizer, int epoch, List<EpochResult> history,
        double bestVal, int sinceBest, IReadOnlyList<string> labels, Standardizer? std, RunIdentity run) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var progress = new Progress(epoch, optimizer.StepCount, optimizer.Name, double.IsFinite(bestVal) ? bestVal : 1e308, sinceBest, history,
            run.Seed, run.BatchSize, run.Epochs, run.Schedule, run.Data, run.Job);
        var meta = new Dictionary<string, string> { ["checkpoint"] = JsonSerializer.Serialize(progress, TrainingJsonContext.Default.Progress) };
        ModelFile.Save(path, net, labels, std, optimizer.State().Select(s => SafeTensorEntry.From("optimizer." + s.Name, s.Tensor)), meta);
    }

    /// <summary>Reads the checkpoint at <paramref name="path"/>: the model (converted to <typeparamref name="T"/>) and the progress.</summary>
    /// <param name="path">A file written by <see cref="Save"/>.</param>
    /// <param name="catalog">The activations, losses and layer kinds names resolve against; null: <see cref="Catalog.Default"/>.</param>
    /// <exception cref="DataFormatException">The file is not a checkpoint (a model without __metadata__.checkpoint), or its model
    /// or progress is missing, damaged or inconsistent.</exception>
    public static Checkpoint<T> Load<T>(string path, Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var file = SafeTensorsFile.Read(path);
        var model = ModelFile.FromFile<T>(file, catalog);
        var p = ReadProgress(file, path);
        return new Checkpoint<T>
        {
            Model = model, File = file, Epoch = p.Epoch, Step = p.Step, Optimizer = p.Optimizer, History = p.History ?? [],
            BestValidationLoss = p.BestValidationLoss, EpochsSinceBest = p.EpochsSinceBest, Seed = p.Seed, BatchSize = p.BatchSize,
            Epochs = p.Epochs, Schedule = p.Schedule, Data = p.Data, Job = p.Job,
        };
    }

    /// <summary>
    /// The configuration a checkpoint recorded (null for a checkpoint written before configurations were recorded),
    /// read without converting its tensors: a resumed run needs it, its precision included, before it loads them.
    /// </summary>
    public static TrainingJob? RecordedJob(string path) => ReadProgress(SafeTensorsFile.Read(path), path).Job;

    /// <summary>
    /// The job a run resuming the checkpoint at <paramref name="path"/> continues, read without converting its tensors:
    /// its recorded job with the settings given explicitly (see <see cref="TrainingJob.Continue"/>). A checkpoint
    /// written before jobs were recorded stands in for its job with what it does hold (its layers, hidden activation
    /// and precision, and its optimizer, seed, batch size, epochs and schedule where recorded) on top of
    /// <paramref name="given"/>, so that an explicitly given setting that contradicts those is refused the same way.
    /// </summary>
    public static TrainingJob ResumedJob(string path, TrainingJob given, IEnumerable<TrainingSetting> explicitlyGiven)
    {
        var file = SafeTensorsFile.Read(path);
        var p = ReadProgress(file, path);
        return (p.Job ?? ImpliedJob(file, p, given)).Continue(given, explicitlyGiven);
    }

    private static TrainingJob ImpliedJob(SafeTensorsFile file, Progress p, TrainingJob given)
    {
        var o = given.Options;
        var job = given with
        {
            Options = o with
            {
                Optimizer = p.Optimizer, Seed = p.Seed ?? o.Seed, BatchSize = p.BatchSize ?? o.BatchSize,
                Epochs = p.Epochs ?? o.Epochs, Schedule = p.Schedule ?? o.Schedule,
            },
        };
        if (file.Metadata.TryGetValue("dtype", out var dtype) && dtype is "float32" or "float64") job = job with { Precision = dtype };
        // An architecture that does not read leaves the given layers: loading the model says what is wrong with it.
        Architecture? arch = null;
        try
        {
            if (file.Metadata.TryGetValue(ModelFile.ArchitectureKey, out var json)) arch = JsonSerializer.Deserialize(json, TrainingJsonContext.Default.Architecture);
        }
        catch (JsonException) { }
        if (arch?.Sizes is { Length: >= 2 } sizes)
        {
            job = job with { Layers = sizes };
            if (arch.Activations is { Length: > 1 } activations && activations[0] is { } hidden) job = job with { Activation = hidden };
        }
        return job;
    }

    private static Progress ReadProgress(SafeTensorsFile file, string path)
    {
        if (!file.Metadata.TryGetValue("checkpoint", out var json))
            throw new DataFormatException($"{path}: __metadata__.checkpoint is missing: this is a model, not a checkpoint");
        Progress? p;
        try { p = JsonSerializer.Deserialize(json, TrainingJsonContext.Default.Progress); }
        catch (JsonException e) { throw new DataFormatException($"{path}: __metadata__.checkpoint is not valid: {e.Message.Split('\n')[0]}"); }
        if (p is null || p.Epoch < 1 || p.Optimizer is null)
            throw new DataFormatException($"{path}: __metadata__.checkpoint needs epoch, step and optimizer");
        if (p.History is { } history && history.Any(h => h is null))
            throw new DataFormatException($"{path}: __metadata__.checkpoint.history holds a null epoch");
        if (p.Job is { } job && DamagedField(job) is { } field)
            throw new DataFormatException($"{path}: __metadata__.checkpoint.job.{field} is missing or not valid");
        return p;
    }

    /// <summary>The first field of a recorded job that JSON left null or unusable (its snake_case name), or null when none.</summary>
    private static string? DamagedField(TrainingJob job)
    {
        // JSON null is deserialised into properties that are not nullable; the compiler cannot see it
        TrainOptions? o = job.Options;
        string?[] texts = [job.Data, job.Activation, job.Init, job.Precision];
        string[] names = ["data", "activation", "init", "precision"];
        for (int i = 0; i < texts.Length; i++)
            if (string.IsNullOrEmpty(texts[i])) return names[i];
        if (job.Layers is { } layers && (layers.Length < 2 || layers.Any(s => s <= 0))) return "layers";
        if (o is null) return "options";
        if (string.IsNullOrEmpty(o.Optimizer)) return "options.optimizer";
        if (string.IsNullOrEmpty(o.Schedule)) return "options.schedule";
        return null;
    }
}
