using System.CommandLine;
using System.Globalization;
using System.Numerics;
using System.Text.Json;
using Backprop.IO;
using Backprop.Health;
using Backprop.Kernels;
using Backprop.Nn;
using Backprop.Training;
using Spectre.Console;

namespace Backprop.Cli.Commands;

/// <summary>
/// train: parses the options into a <see cref="TrainingJob"/> (or continues a checkpoint's), runs it as a
/// <see cref="TrainingRun{T}"/>, and renders its progress, plots and results.
/// </summary>
public static class TrainCommand
{
    /// <summary>The flag of each setting of a job: the one place the CLI names them, in options and in errors.</summary>
    public static string FlagOf(TrainingSetting setting) => setting switch
    {
        TrainingSetting.Data => "--data",
        TrainingSetting.LabelColumn => "--label",
        TrainingSetting.Layers => "--layers",
        TrainingSetting.Activation => "--activation",
        TrainingSetting.Init => "--init",
        TrainingSetting.Precision => "--dtype",
        TrainingSetting.Optimizer => "--optimizer",
        TrainingSetting.LearningRate => "--lr",
        TrainingSetting.Momentum => "--momentum",
        TrainingSetting.Nesterov => "--nesterov",
        TrainingSetting.WeightDecay => "--weight-decay",
        TrainingSetting.Schedule => "--schedule",
        TrainingSetting.WarmupSteps => "--warmup",
        TrainingSetting.ClipNorm => "--clip",
        TrainingSetting.Patience => "--patience",
        TrainingSetting.Seed => "--seed",
        TrainingSetting.BatchSize => "--batch",
        TrainingSetting.Epochs => "--epochs",
        TrainingSetting.Architecture => "--arch",
        TrainingSetting.Dropout => "--dropout",
        TrainingSetting.Norm => "--norm",
        TrainingSetting.Task => "--task",
        TrainingSetting.Loss => "--loss",
        TrainingSetting.HuberDelta => "--huber-delta",
        TrainingSetting.ClassWeights => "--class-weights",
        TrainingSetting.PosWeight => "--pos-weight",
        // not options of this CLI: the library's defaults
        _ => setting.ToString(),
    };

    public static Command Create(Catalog catalog)
    {
        var optimizers = OptimizerRegistry.Default;
        var data = new Option<string>(FlagOf(TrainingSetting.Data)) { Description = "A directory of MNIST IDX files, or a CSV file", DefaultValueFactory = _ => "data/mnist" };
        var layers = new Option<string?>(FlagOf(TrainingSetting.Layers)) { Description = "Layer sizes, input first (default 784,512,256,10 for MNIST; features,64,classes for CSV)" };
        var activation = new Option<string>(FlagOf(TrainingSetting.Activation)) { Description = "Hidden activation", DefaultValueFactory = _ => "relu" };
        var optimizer = new Option<string>(FlagOf(TrainingSetting.Optimizer)) { Description = optimizers.NamesText(), DefaultValueFactory = _ => "adam" };
        var lr = new Option<double>(FlagOf(TrainingSetting.LearningRate)) { Description = "Learning rate", DefaultValueFactory = _ => 0.001 };
        var batch = new Option<int>(FlagOf(TrainingSetting.BatchSize)) { Description = "Batch size", DefaultValueFactory = _ => 128 };
        var epochs = new Option<int>(FlagOf(TrainingSetting.Epochs)) { Description = "Epochs", DefaultValueFactory = _ => 10 };
        var seed = new Option<int>(FlagOf(TrainingSetting.Seed)) { Description = "Random seed (initialisation, split, shuffling)", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads") { Description = "Worker threads for the kernels (default: all cores)", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Where to save the trained model (safetensors); a missing directory is made", DefaultValueFactory = _ => "model.safetensors" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Write a checkpoint (model, optimizer state, epoch, the run's options) here after every epoch (resuming: the --resume file unless given)" };
        var resume = new Option<string?>("--resume") { Description = "Continue training from a checkpoint, with the options it was trained with" };
        var json = new Option<bool>("--json") { Description = "End with one JSON object of results on the last line" };
        var quiet = new Option<bool>("--quiet") { Description = "No progress bar or per-epoch table" };
        var label = new Option<string?>(FlagOf(TrainingSetting.LabelColumn)) { Description = "CSV label column (default: 'label', else the last column)" };
        var dtype = new Option<string>(FlagOf(TrainingSetting.Precision)) { Description = "float32 or float64", DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var momentum = new Option<double>(FlagOf(TrainingSetting.Momentum)) { Description = "SGD momentum", DefaultValueFactory = _ => 0.9 };
        var nesterov = new Option<bool>(FlagOf(TrainingSetting.Nesterov)) { Description = "Nesterov momentum (SGD)" };
        var weightDecay = new Option<double?>(FlagOf(TrainingSetting.WeightDecay))
        {
            Description = "Weight decay (L2, or decoupled for AdamW) [default: " + string.Join(", ", optimizers.Kinds.Select(k => $"{k.Name} {k.DefaultWeightDecay.ToString(CultureInfo.InvariantCulture)}")) + "]",
        };
        var schedule = new Option<string>(FlagOf(TrainingSetting.Schedule)) { Description = "Learning-rate schedule over the run: cosine (default), step or constant", DefaultValueFactory = _ => "cosine" };
        schedule.AcceptOnlyFromAmong([.. LrSchedule.Kinds]);
        var warmup = new Option<int>(FlagOf(TrainingSetting.WarmupSteps)) { Description = "Linear warm-up steps", DefaultValueFactory = _ => 0 };
        var clip = new Option<double>(FlagOf(TrainingSetting.ClipNorm)) { Description = "Clip gradients to this global L2 norm (0: off)", DefaultValueFactory = _ => 0.0 };
        var patience = new Option<int>(FlagOf(TrainingSetting.Patience)) { Description = "Stop after this many epochs without a better validation loss (0: off)", DefaultValueFactory = _ => 0 };
        var diagnostics = new Option<bool>("--diagnostics") { Description = "Record per-layer gradient health every epoch (norms, update ratio, dead/saturated units)" };
        var plots = new Option<string?>("--plots") { Description = "Write loss, accuracy and gradient-norm plots (PNG) and history.json to this directory" };
        var report = new Option<string?>("--report") { Description = "Write DIR/report.html, one self-contained page of the run (curves, gradient norms, health, confusion matrix), rewritten after every epoch" };
        var arch = new Option<string?>(FlagOf(TrainingSetting.Architecture))
        {
            Description = "The whole network, layer by layer, in place of --layers/--activation/--norm/--dropout, e.g. \"784-512:relu:ln-256:relu:drop0.2-10\" " +
                "(blocks separated by '-' start with a width (a dense layer); ':' adds an activation to the layer before it, ln/bn a layer or batch norm, dropP a dropout layer)",
        };
        var dropout = new Option<double>(FlagOf(TrainingSetting.Dropout)) { Description = "Dropout probability after each hidden activation (0: none)", DefaultValueFactory = _ => 0.0 };
        var norm = new Option<string?>(FlagOf(TrainingSetting.Norm)) { Description = "layernorm or batchnorm before each hidden activation" };
        norm.AcceptOnlyFromAmong("layernorm", "batchnorm");
        var distributed = new Option<bool>("--distributed")
        {
            Description = "Data-parallel training under mpirun (Open MPI): every rank takes its share of each global --batch and the gradients are summed; rank 0 prints and writes the files",
        };
        var init = new Option<string>(FlagOf(TrainingSetting.Init)) { Description = "default, xavier_uniform, xavier_normal, he_uniform or he_normal", DefaultValueFactory = _ => "default" };
        var task = new Option<string?>(FlagOf(TrainingSetting.Task)) { Description = $"{TrainingTask.NamesText} (default: from the label column: non-integer numbers are a regression)" };
        task.AcceptOnlyFromAmong([.. TrainingTask.All.Select(t => t.Name)]);
        var loss = new Option<string?>(FlagOf(TrainingSetting.Loss)) { Description = "Regression loss: mse (default), l1 or huber" };
        var huberDelta = new Option<double>(FlagOf(TrainingSetting.HuberDelta)) { Description = "The huber loss's delta", DefaultValueFactory = _ => 1.0 };
        var classWeights = new Option<string?>(FlagOf(TrainingSetting.ClassWeights)) { Description = "balanced, or one weight per class (w0,w1,…): weighted cross-entropy" };
        var posWeight = new Option<string?>(FlagOf(TrainingSetting.PosWeight)) { Description = "Multi-label: weight of the positive term, one for all labels or one per label" };
        var labels = new Option<string?>("--labels") { Description = "Several 0/1 label columns (a,b,c): a multi-label task" };

        // The options that are settings of the job: a resumed run takes the checkpoint's value of those not given.
        var settings = new (Option Option, TrainingSetting Setting)[]
        {
            (data, TrainingSetting.Data), (label, TrainingSetting.LabelColumn), (layers, TrainingSetting.Layers), (activation, TrainingSetting.Activation),
            (init, TrainingSetting.Init), (dtype, TrainingSetting.Precision), (optimizer, TrainingSetting.Optimizer), (lr, TrainingSetting.LearningRate),
            (momentum, TrainingSetting.Momentum), (nesterov, TrainingSetting.Nesterov), (weightDecay, TrainingSetting.WeightDecay),
            (schedule, TrainingSetting.Schedule), (warmup, TrainingSetting.WarmupSteps), (clip, TrainingSetting.ClipNorm),
            (patience, TrainingSetting.Patience), (seed, TrainingSetting.Seed), (batch, TrainingSetting.BatchSize), (epochs, TrainingSetting.Epochs),
            (arch, TrainingSetting.Architecture), (dropout, TrainingSetting.Dropout), (norm, TrainingSetting.Norm),
            (task, TrainingSetting.Task), (loss, TrainingSetting.Loss), (huberDelta, TrainingSetting.HuberDelta), (classWeights, TrainingSetting.ClassWeights),
            (posWeight, TrainingSetting.PosWeight), (labels, TrainingSetting.LabelColumn), (labels, TrainingSetting.Task),
        };

        var cmd = new Command("train", "Train an MLP classifier (default: the reference MNIST run)")
        {
            data, layers, activation, optimizer, lr, batch, epochs, seed, threads, output, checkpoint, resume, json, quiet, label, dtype,
            momentum, nesterov, weightDecay, schedule, warmup, clip, patience, init, diagnostics, plots, arch, dropout, norm,
            task, loss, huberDelta, classWeights, posWeight, labels, distributed, report,
        };
        cmd.SetAction(r =>
        {
            bool read = false;
            try { return Act(r, ref read); }
            // what the action reads of the command line itself (--layers, --label with --labels) is wrong on every rank
            // alike: rank 0 says it once, as for the parser's own errors (Cli.Run), and the others end in silence
            catch (UsageException) when (!read && r.GetValue(distributed) && Cli.LaterRank) { return 0; }
        });
        return cmd;

        int Act(ParseResult r, ref bool read)
        {
            string? layersText = r.GetValue(layers);
            string? taskName = r.GetValue(task), labelColumn = r.GetValue(label);
            if (r.GetValue(labels) is { } multi)
            {
                if (labelColumn is not null) throw new UsageException("--label and --labels: give one (--labels a,b,c names the 0/1 columns of a multi-label task)");
                if (taskName is not null && taskName != TrainingTask.MultiLabel.Name)
                    throw new UsageException($"--labels {multi} selects the multilabel task, not --task {taskName}; use --label a,b for several regression targets");
                labelColumn = multi;
                taskName = TrainingTask.MultiLabel.Name;
            }
            var given = new TrainingJob
            {
                Task = taskName, Loss = r.GetValue(loss), HuberDelta = r.GetValue(huberDelta), ClassWeights = r.GetValue(classWeights),
                PosWeight = r.GetValue(posWeight),
                Data = r.GetValue(data)!, LabelColumn = labelColumn, Layers = layersText is null ? null : ParseLayers(layersText),
                Activation = r.GetValue(activation)!, Init = r.GetValue(init)!, Precision = r.GetValue(dtype)!,
                Architecture = r.GetValue(arch), Dropout = r.GetValue(dropout), Norm = r.GetValue(norm),
                Options = new TrainOptions
                {
                    Epochs = r.GetValue(epochs), BatchSize = r.GetValue(batch), Seed = r.GetValue(seed), LearningRate = r.GetValue(lr),
                    Optimizer = r.GetValue(optimizer)!, Momentum = r.GetValue(momentum), Nesterov = r.GetValue(nesterov),
                    WeightDecay = r.GetValue(weightDecay), Schedule = r.GetValue(schedule)!, WarmupSteps = r.GetValue(warmup),
                    ClipNorm = r.GetValue(clip), Patience = r.GetValue(patience),
                },
            };
            // A resumed run keeps checkpointing where it resumed from unless told otherwise: the atomic writes keep the
            // old checkpoint valid until the next epoch is complete, and a second kill then loses at most one epoch.
            var a = new TrainArgs(given, r.GetValue(threads), r.GetValue(output)!, r.GetValue(checkpoint) ?? r.GetValue(resume), r.GetValue(resume),
                r.GetValue(json), r.GetValue(quiet),
                r.GetValue(diagnostics) || r.GetValue(plots) is not null || r.GetValue(report) is not null, r.GetValue(plots)) { Report = r.GetValue(report) };
            read = true;
            if (r.GetValue(distributed)) return Distributed(a, settings, r, catalog);
            var explicitlyGiven = settings.Where(s => r.GetResult(s.Option) is { Implicit: false }).Select(s => s.Setting).Distinct().ToArray();
            TrainingJob job = given;
            return MapLibraryErrors(a.Resume, () => job.Data, () =>
            {
                job = JobToRun(a, explicitlyGiven, catalog);
                a = a with { Job = job, Given = a.Resume is null ? explicitlyGiven : null };
                return job.Precision == "float64" ? Run<double>(a, catalog) : Run<float>(a, catalog);
            });
        }
    }

    /// <summary>
    /// `--distributed`: the same run on every rank of an mpirun job, over MPI. Rank 0 prints, checkpoints and saves; the
    /// others run quietly. An error that every rank meets alike (a bad option, a divergence, which the ranks agree on) is
    /// printed by rank 0 only; one that a rank meets alone is printed by that rank. A failing rank ends the whole job
    /// (MPI_Abort), so that no rank waits for it.
    /// </summary>
    private static int Distributed(TrainArgs given, (Option Option, TrainingSetting Setting)[] settings, ParseResult r, Catalog catalog)
    {
        Backprop.Distributed.MpiCollective mpi;
        try { mpi = new Backprop.Distributed.MpiCollective(); }
        catch (Backprop.Distributed.MpiUnavailableException e) { throw new UsageException($"--distributed: {e.Message}"); }
        int rank = mpi.Rank;
        var a = rank == 0 ? given : given with { Quiet = true, Json = false, Plots = null, Report = null };
        // the ranks agree that every one of them is ready before the first collective call (see StartGate)
        var gate = new Backprop.Distributed.StartGate(mpi);
        a = a with { Collective = gate };
        var explicitlyGiven = settings.Where(s => r.GetResult(s.Option) is { Implicit: false }).Select(s => s.Setting).Distinct().ToArray();
        TrainingJob job = a.Job;
        // mpirun ends the other ranks when one dies: rank 0 says why in one line (the checkpoint of the last complete
        // epoch is written atomically, so it stays loadable), unless it has already said why the run ended
        using var stopped = rank != 0 ? null : new JobStopNotice(() => "backprop: the job was stopped (mpirun ends every rank when one of them ends, or when it is interrupted)" +
            (a.Checkpoint is { } ck && File.Exists(ck) ? $"; continue with --resume {ck}" : ""));
        int code;
        try
        {
            code = MapLibraryErrors(a.Resume, () => job.Data, () =>
            {
                job = JobToRun(a, explicitlyGiven, catalog);
                a = a with { Job = job, Given = a.Resume is null ? explicitlyGiven : null };
                return job.Precision == "float64" ? Run<double>(a, catalog) : Run<float>(a, catalog);
            });
            stopped?.Ended();
        }
        catch (Exception e)
        {
            stopped?.Ended();
            // An error before the first collective call (a bad option or CSV, which every rank meets alike, or a file one
            // rank cannot read) is agreed at the start gate: every rank learns the lowest failing rank's line, rank 0
            // prints it once, and all end normally. A divergence is shared by design. Anything else may leave the
            // others inside a collective call, waiting for this rank: the transport's abort ends them.
            var failed = e as Backprop.Distributed.MemberFailedException;
            if (failed is null && !gate.Started && e is not OperationCanceledException)
            {
                var (line, exit) = Cli.Describe(e);
                failed = gate.Fail(line, exit);
            }
            bool shared = failed is not null || e is NonFiniteValueException or OperationCanceledException;
            if (e is OperationCanceledException) code = ExitInterrupted;
            else if (failed is not null)
            {
                code = failed.ExitCode;   // the lowest failing rank's, on every rank
                if (rank == 0) Console.Error.WriteLine($"backprop: {(failed.Rank == 0 ? failed.Detail : failed.Message)}");
            }
            else if (rank == 0) code = Cli.Report(e);
            else
            {
                code = Cli.ExitCodeOf(e);
                if (!shared) Console.Error.WriteLine($"backprop: rank {rank}: {string.Join(' ', e.Message.Split('\n', StringSplitOptions.TrimEntries))}");
            }
            Console.Error.Flush();
            Console.Out.Flush();
            if (!shared) mpi.Abort(code);
        }
        mpi.Dispose();
        return code;
    }

    /// <summary>The parsed command line: the job as given, and what only the CLI cares about.</summary>
    /// <param name="Given">The settings given on the command line; the others adapt to a CSV file's size. Null: none adapt (resuming).</param>
    public sealed record TrainArgs(TrainingJob Job, int Threads, string Out, string? Checkpoint, string? Resume, bool Json, bool Quiet,
        bool Diagnostics, string? Plots)
    {
        public IReadOnlyCollection<TrainingSetting>? Given { get; init; }
        /// <summary>The group of a `--distributed` run; null: one process.</summary>
        public Backprop.Distributed.ICollective? Collective { get; init; }
        /// <summary>--report: the directory of report.html; null: none.</summary>
        public string? Report { get; init; }
    }

    /// <summary>
    /// The job to run: as given, or, resuming, the checkpoint's job with the options given explicitly (a contradicting
    /// one is refused). A checkpoint from before jobs were recorded gives what it holds (layers, activation, dtype,
    /// optimizer, seed, batch, epochs, schedule) and the options as given for the rest (see <see cref="Checkpoint.ResumedJob"/>).
    /// </summary>
    private static TrainingJob JobToRun(TrainArgs a, IReadOnlyList<TrainingSetting> explicitlyGiven, Catalog catalog)
    {
        Cli.CheckThreads(a.Threads);
        foreach (var (flag, path) in new[] { ("--resume", a.Resume), ("--checkpoint", a.Checkpoint) })
            if (path is not null && SamePath(a.Out, path))
                throw new UsageException($"--out {a.Out} is also the {flag} file: the trained model would replace the checkpoint; save the model elsewhere");
        // The directories of the model and the checkpoint, and those of --plots and --report themselves, are made before
        // any data is read or any step is taken: a directory that cannot be made (or a model file that is a directory)
        // stops the run now, not when it ends.
        foreach (var (flag, path) in new[] { ("--out", a.Out), ("--checkpoint", a.Checkpoint) })
            if (path is not null && Directory.Exists(path))
                throw new UsageException($"{flag} {path} is a directory; name a file in it ({Path.Combine(path, flag == "--out" ? "model.safetensors" : "run.ck")})");
        foreach (var (flag, path, dir) in new[]
        {
            ("--out", a.Out, Path.GetDirectoryName(Path.GetFullPath(a.Out))), ("--checkpoint", a.Checkpoint, a.Checkpoint is { } c ? Path.GetDirectoryName(Path.GetFullPath(c)) : null),
            ("--plots", a.Plots, a.Plots is { } p ? Path.GetFullPath(p) : null), ("--report", a.Report, a.Report is { } r ? Path.GetFullPath(r) : null),
        })
        {
            if (path is null || dir is null || Directory.Exists(dir)) continue;
            try { Directory.CreateDirectory(dir); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                string? file = dir;
                while (file is not null && !File.Exists(file)) file = Path.GetDirectoryName(file);
                throw new UsageException($"{flag} {path}: cannot make the directory {dir} ({(file is not null ? $"{file} is a file" : AtomicFile.Reason(e))})");
            }
        }
        a.Job.Validate(activations: catalog.Activations);
        if (a.Resume is null) return a.Job;
        var job = Checkpoint.ResumedJob(a.Resume, a.Job, explicitlyGiven);
        if (!explicitlyGiven.Contains(TrainingSetting.Data) && !File.Exists(job.Data) && !Directory.Exists(job.Data) && Checkpoint.RecordedJob(a.Resume) is not null)
            throw new UsageException($"--resume {a.Resume}: the checkpoint recorded --data {job.Data}, which does not exist; give --data to train on the data " +
                "from elsewhere (the checkpoint's fingerprint still checks that the rows are the same)");
        return job;
    }

    /// <summary>Whether two paths name the same file (by full path; case-insensitively where the file system usually is).</summary>
    private static bool SamePath(string a, string b) =>
        string.Equals(Path.GetFullPath(a), Path.GetFullPath(b),
            OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    /// <summary>The library's errors about settings, worded in this command's flags.</summary>
    /// <param name="resume">The checkpoint resumed, if any.</param>
    /// <param name="dataPath">The data the run trains on (the checkpoint's, when resuming without --data).</param>
    private static int MapLibraryErrors(string? resume, Func<string> dataPath, Func<int> run)
    {
        try { return run(); }
        catch (InvalidTrainingSettingException e) { throw new UsageException($"{FlagOf(e.Setting)} {e.Value}: {e.Problem}"); }
        catch (CheckpointMismatchException e)
        {
            string flag = FlagOf(e.Setting);
            throw new UsageException(e.Reason switch
            {
                CheckpointMismatchReason.OtherData =>
                    $"--resume {resume}: the checkpoint was trained on other data (fingerprint {e.CheckpointValue}, --data {dataPath()} gives {e.GivenValue}); resume with the same data",
                CheckpointMismatchReason.CosineSpansEpochs when e.Setting == TrainingSetting.Epochs =>
                    $"--epochs {e.GivenValue} contradicts the checkpoint {resume}, whose cosine learning rate spans --epochs {e.CheckpointValue}; " +
                    $"resume with --epochs {e.CheckpointValue} (or train with --schedule constant to extend runs)",
                CheckpointMismatchReason.CosineSpansEpochs =>
                    $"{flag} {e.GivenValue} contradicts the checkpoint {resume}, whose cosine learning rate spans its --epochs; resume with --schedule cosine",
                _ => $"{flag} {e.GivenValue} contradicts the checkpoint {resume}, which was trained with {flag} {e.CheckpointValue}",
            });
        }
    }

    public static int[] ParseLayers(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var sizes = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out sizes[i]) || sizes[i] <= 0)
                throw new UsageException($"--layers {text}: '{parts[i]}' is not a positive integer");
        if (sizes.Length < 2) throw new UsageException($"--layers {text}: needs at least an input and an output size");
        return sizes;
    }

    /// <summary>Calls an action for every report, on the reporting thread (<see cref="Progress{T}"/> would post them elsewhere).</summary>
    private sealed class Reporter<TValue>(Action<TValue> report) : IProgress<TValue>
    {
        public void Report(TValue value) => report(value);
    }

    /// <summary>"784-512-256-10 relu" for a plain MLP (as always), else the network's spec.</summary>
    private static string NetworkText<T>(Sequential<T> network, TrainingJob job) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var spec = ArchitectureSpec.Of(network);
        return spec.IsPlainMlp && job.Layers is not null ? $"{string.Join("-", job.Layers)} {job.Activation}" : spec.ToString();
    }

    /// <summary>
    /// Rank 0's one line when mpirun ends the job (a rank died, or mpirun itself was interrupted). Open MPI 4.1's mpirun
    /// ends a job's ranks with SIGCONT, SIGTERM a second later and SIGKILL about 7 ms after that (strace), and .NET runs a
    /// SIGTERM handler on a thread it starts then: with 3 ranks on 2 cores, two of them spinning in MPI calls, the line
    /// missed those 7 ms in about 1 run in 10. So it is said at the SIGCONT, a second early, unless that SIGCONT resumed
    /// a stopped process (a thread that ticks every 100 ms tells: it did not tick meanwhile); the SIGTERM says it if the
    /// SIGCONT did not. Nothing is said once the run has ended by itself (<see cref="Ended"/>).
    /// </summary>
    private sealed class JobStopNotice : IDisposable
    {
        private static readonly TimeSpan Stopped = TimeSpan.FromMilliseconds(500);
        private readonly Func<string> _line;
        private readonly System.Runtime.InteropServices.PosixSignalRegistration _terminate;
        private readonly System.Runtime.InteropServices.PosixSignalRegistration? _resume;   // no SIGCONT on Windows (nor MPI here)
        private long _tick = System.Diagnostics.Stopwatch.GetTimestamp(), _resumedAt;
        private int _said;   // 1 once the line is out or the run has ended
        private volatile bool _disposed;

        public JobStopNotice(Func<string> line)
        {
            _line = line;
            new Thread(Tick) { IsBackground = true, Name = "job stop notice" }.Start();
            _terminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, _ => Say());
            if (OperatingSystem.IsWindows()) return;
            _resume = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGCONT, _ =>
            {
                // a process that was stopped did not tick meanwhile; the ticker may have woken first and noted the gap
                long now = System.Diagnostics.Stopwatch.GetTimestamp();
                bool wasStopped = System.Diagnostics.Stopwatch.GetElapsedTime(Volatile.Read(ref _tick), now) > Stopped
                    || Volatile.Read(ref _resumedAt) is long at && at != 0 && System.Diagnostics.Stopwatch.GetElapsedTime(at, now) < Stopped;
                if (!wasStopped) Say();
            });
        }

        private void Tick()
        {
            while (!_disposed)
            {
                long now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (System.Diagnostics.Stopwatch.GetElapsedTime(Volatile.Read(ref _tick), now) > Stopped) Volatile.Write(ref _resumedAt, now);
                Volatile.Write(ref _tick, now);
                Thread.Sleep(100);
            }
        }

        private void Say()
        {
            if (Interlocked.Exchange(ref _said, 1) == 0) Console.Error.WriteLine(_line());
        }

        /// <summary>The run has ended by itself (and said why, if it failed): no line from now on.</summary>
        public void Ended() => Interlocked.Exchange(ref _said, 1);

        public void Dispose()
        {
            _disposed = true;
            _terminate.Dispose();
            _resume?.Dispose();
        }
    }

    /// <summary>The exit code of a run stopped by Ctrl+C (128 + SIGINT, as shells report it).</summary>
    public const int ExitInterrupted = 130;

    private static int Run<T>(TrainArgs a, Catalog catalog) where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var context = new ComputeContext(a.Threads);
        var ck = a.Resume is null ? null : Checkpoint.Load<T>(a.Resume, catalog);
        var run = TrainingRun<T>.Create(a.Job, ck, a.Checkpoint, a.Diagnostics, resumeSource: a.Resume ?? "checkpoint", context: context, catalog: catalog,
            given: a.Given, collective: a.Collective);
        bool writes = a.Collective is not { Rank: > 0 };   // one rank writes the files
        var job = run.Job;
        var o = job.Options;
        var data = run.Data;
        var ansi = Cli.Ansi();
        bool live = !a.Quiet && !a.Json && ansi.Profile.Capabilities.Interactive;
        var metricNames = run.Task.MetricNames;
        if (!a.Quiet)
        {
            if (run.DefaultsSaid is not null || run.Data.TargetsInferred)
                Console.WriteLine(string.Join("; ", new[]
                {
                    run.Data.TargetsInferred ? $"the label column '{run.Data.LabelColumn}' holds non-integer numbers: a regression (--task classification to treat them as classes)" : null,
                    run.DefaultsSaid,
                }.Where(x => x is not null)));
            Console.WriteLine($"training {NetworkText(run.Network, job)} on {data.Kind}{(data.Kind == "csv" ? $" ({run.Task.Name}, {run.Trainer.Objective.Loss.Name})" : "")} ({data.Train.Count} train, {data.Validation.Count} validation, {data.Test.Count} test), " +
                $"{o.Optimizer} lr {o.LearningRate}, batch {o.BatchSize}, {job.Precision}, " +
                (a.Collective is { Size: > 1 } group ? $"{group.Size} ranks × {context.Threads} threads ({group.Transport})" : $"{context.Threads} threads"));
            Console.WriteLine($"{"epoch",5} {"train loss",11} {"train " + run.Task.MetricColumns[0],9} {"val loss",9} {string.Join(" ", run.Task.MetricColumns.Select(m => $"{"val " + m,8}"))} {"lr",9} {"seconds",8} {"samples/s",10}");
        }

        // While the live progress bar shows, lines go through its console, which keeps the bar below them.
        Action<string> writeLine = live ? line => ansi.WriteLine(line) : Console.WriteLine;
        IProgress<EpochReport>? epochRows = a.Quiet ? null : new Reporter<EpochReport>(r => WriteEpoch(writeLine, r, o.Patience, metricNames));
        var report = writes && a.Report is not null ? ReportFile.Start(a.Report, run, NetworkText(run.Network, job)) : null;
        if (report is not null) { var rows = epochRows; epochRows = new Reporter<EpochReport>(r => { rows?.Report(r); report.Epoch(r); }); }
        // A checkpoint of an earlier epoch (of this run, or the one it resumed) is left as it was when a run fails or stops.
        // A --checkpoint file that this run has not written yet is not one (a file left by another run, say).
        var started = DateTime.UtcNow.AddSeconds(-1);   // file times can be coarser than the clock
        string? LastGoodCheckpoint() =>
            a.Checkpoint is { } ck && File.Exists(ck) && (File.GetLastWriteTimeUtc(ck) >= started || a.Resume is { } r && SamePath(r, ck)) ? ck
            : a.Resume is { } resumed && File.Exists(resumed) ? resumed : null;

        TrainingResult result;
        // Ctrl+C (SIGINT) stops the run between two steps; the checkpoint of the last complete epoch stays as it was.
        using var interrupt = new CancellationTokenSource();
        ConsoleCancelEventHandler onInterrupt = (_, e) => { e.Cancel = true; interrupt.Cancel(); };
        Console.CancelKeyPress += onInterrupt;
        try
        {
            if (live)
            {
                TrainingResult? done = null;
                ansi.Progress().AutoClear(true).HideCompleted(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        ProgressTask? task = null;
                        int taskEpoch = 0, calls = 0;
                        var bar = new Reporter<BatchProgress>(p =>
                        {
                            if (p.Epoch != taskEpoch)
                            {
                                task?.StopTask();
                                task = ctx.AddTask($"epoch {p.Epoch}/{p.Epochs}", maxValue: p.SamplesPerEpoch);
                                taskEpoch = p.Epoch;
                                calls = 0;
                            }
                            if (++calls % 16 != 0 && p.Samples != p.SamplesPerEpoch) return;
                            task!.Value = p.Samples;
                            double rate = p.Samples / Math.Max(1e-9, p.Elapsed.TotalSeconds);
                            task.Description = $"epoch {p.Epoch}/{p.Epochs} {rate,8:N0} samples/s";
                        });
                        done = run.Run(bar, epochRows, interrupt.Token);
                    });
                result = done!;
            }
            else result = run.Run(null, epochRows, interrupt.Token);
        }
        catch (NonFiniteValueException e)
        {
            // every rank of a distributed run stops with the same divergence: rank 0 says it
            if (writes) Console.Error.WriteLine($"backprop: {Cli.Diverged(e, o.LearningRate, LastGoodCheckpoint())}");
            return 1;
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
        {
            string? lastGood = LastGoodCheckpoint();
            Console.Error.WriteLine(lastGood is null
                ? "backprop: interrupted; nothing was saved (train with --checkpoint F to be able to resume)"
                : $"backprop: interrupted; continue with: backprop train --resume {lastGood}");
            return ExitInterrupted;
        }
        finally
        {
            Console.CancelKeyPress -= onInterrupt;
        }

        // the last collective call is behind: the ranks finalise MPI while rank 0 writes its files
        ((a.Collective as Backprop.Distributed.StartGate)?.Inner as Backprop.Distributed.MpiCollective)?.BeginFinalize();
        if (!a.Quiet && result.StoppedEarly && result.History.Count < run.FirstEpoch)
            Console.WriteLine($"early stop: no better validation loss for {o.Patience} epochs, already at the checkpoint");
        var health = result.Diagnostics;
        if (health.Count > 0 && !a.Quiet) Console.WriteLine($"gradient health: {Diagnostics.Verdict(health[^1])}");
        if (a.Plots is not null)
        {
            Directory.CreateDirectory(a.Plots);
            AtomicFile.WriteAllText(Path.Combine(a.Plots, "history.json"),
                JsonSerializer.Serialize(new TrainingPlots.History(run.Task.Name, metricNames, result.History, health), CliJsonContext.Default.History));
            var files = TrainingPlots.Write(a.Plots, result.History, health, metricNames);
            if (!a.Quiet) Console.WriteLine($"plots: {string.Join(", ", files)}");
        }
        report?.Finish(run, result);
        if (writes) run.SaveModel(a.Out);
        if (!a.Quiet && result.BestEpoch is int best)
            Console.WriteLine($"kept the weights of epoch {best}, the best validation loss");
        if (!a.Quiet && run.Trainer.Parallel is { AllReduceCalls: > 0 } members)
            Console.WriteLine($"all-reduce: {members.AllReduceSeconds * 1e3 / members.AllReduceCalls:F3} ms a step over {members.Size} ranks " +
                $"({members.AllReduceSeconds / Math.Max(1e-9, result.TrainSeconds):P1} of the training time); waiting for the slowest rank's forward pass: " +
                $"{members.AgreementSeconds * 1e3 / members.AllReduceCalls:F3} ms a step ({members.AgreementSeconds / Math.Max(1e-9, result.TrainSeconds):P1})");
        if (!a.Quiet)
            Console.WriteLine($"test {string.Join(", ", result.TestMetrics.Select(run.Task.Describe))}, test loss {result.TestLoss:F4}; trained {result.TrainSeconds:F2} s ({result.SamplesPerSecond:N0} samples/s); saved {a.Out}");
        if (a.Json)
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteString("task", run.Task.Name);
                foreach (var m in result.TestMetrics) w.WriteNumber("test_" + m.Name, m.Value);
                w.WriteNumber("test_loss", result.TestLoss);
                w.WriteNumber("train_seconds", Math.Round(result.TrainSeconds, 4));
                w.WriteNumber("epochs", result.History.Count);
                w.WriteNumber("samples_per_s", Math.Round(result.SamplesPerSecond, 1));
                if (run.Trainer.Parallel is { AllReduceCalls: > 0 } p)
                {
                    w.WriteNumber("ranks", p.Size);
                    w.WriteNumber("allreduce_ms_per_step", Math.Round(p.AllReduceSeconds * 1e3 / p.AllReduceCalls, 3));
                    w.WriteNumber("allreduce_share", Math.Round(p.AllReduceSeconds / Math.Max(1e-9, result.TrainSeconds), 4));
                    w.WriteNumber("wait_ms_per_step", Math.Round(p.AgreementSeconds * 1e3 / p.AllReduceCalls, 3));
                    w.WriteNumber("wait_share", Math.Round(p.AgreementSeconds / Math.Max(1e-9, result.TrainSeconds), 4));
                }
                w.WriteEndObject();
            });
        return 0;
    }

    /// <summary>Fractions of rows (accuracies) as percentages; other metrics as numbers.</summary>
    private static string Cell(double v, string key, int width) =>
        TrainingTask.IsShare(key) ? (v * 100).ToString("F2", CultureInfo.InvariantCulture).PadLeft(width - 1) + "%" : v.ToString("G4", CultureInfo.InvariantCulture).PadLeft(width);

    /// <summary>An epoch's row of the table, its gradient health when collected, and the early-stop note.</summary>
    private static void WriteEpoch(Action<string> writeLine, EpochReport report, int patience, IReadOnlyList<string> metrics)
    {
        var er = report.Result;
        double vl = er.ValidationLoss ?? double.NaN;
        string Value(string key, int width) => Cell(er.Metrics is { } m && m.TryGetValue(key, out var v) ? v : double.NaN, key, width);
        writeLine($"{er.Epoch,5} {er.TrainLoss,11:F4} {Value("train_" + metrics[0], 9)} {vl,9:F4} {string.Join(" ", metrics.Select(m => Value("val_" + m, 8)))} {er.LearningRate,9:G3} {er.Seconds,8:F2} {er.SamplesPerSecond,10:N0}");
        if (report.Diagnostics is { } d)
            foreach (var l in d)
                writeLine($"      layer {l.Layer} {l.Activation,-10} ‖∂L/∂W‖ {l.WeightGradientNorm,9:0.00e0}  ‖W‖ {l.WeightNorm,8:F3}  update/weight {l.UpdateRatio ?? 0,8:0.00e0}  ‖∂L/∂h‖ {l.OutputGradientNorm,9:0.00e0}  dead {l.DeadFraction ?? 0,6:P1}  saturated {l.SaturatedFraction ?? 0,6:P1}");
        if (report.StopsEarly) writeLine($"early stop: no better validation loss for {patience} epochs");
    }
}
