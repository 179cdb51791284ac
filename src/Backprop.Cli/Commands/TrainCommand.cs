using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Text.Json;
using Backprop.Data;
using Backprop.Health;
using Backprop.IO;
using Backprop.Kernels;
using Backprop.Nn;
using Backprop.Training;
using Spectre.Console;

namespace Backprop.Cli.Commands;

public static class TrainCommand
{
    public static Command Create(Catalog catalog)
    {
        var data = new Option<string>("--data") { Description = "A directory of MNIST IDX files, or a CSV file", DefaultValueFactory = _ => "data/mnist" };
        var layers = new Option<string?>("--layers") { Description = "Layer sizes, input first (default 784,512,256,10 for MNIST; features,64,classes for CSV)" };
        var activation = new Option<string>("--activation") { Description = "Hidden activation", DefaultValueFactory = _ => "relu" };
        var optimizer = new Option<string>("--optimizer") { Description = "sgd, adam, adamw or rmsprop", DefaultValueFactory = _ => "adam" };
        var lr = new Option<double>("--lr") { Description = "Learning rate", DefaultValueFactory = _ => 0.001 };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 128 };
        var epochs = new Option<int>("--epochs") { Description = "Epochs", DefaultValueFactory = _ => 10 };
        var seed = new Option<int>("--seed") { Description = "Random seed (initialisation, split, shuffling)", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads") { Description = "Worker threads for the kernels (default: all cores)", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Where to save the trained model (safetensors)", DefaultValueFactory = _ => "model.safetensors" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Write a checkpoint (model, optimizer state, epoch) here after every epoch" };
        var resume = new Option<string?>("--resume") { Description = "Continue training from a checkpoint" };
        var json = new Option<bool>("--json") { Description = "End with one JSON object of results on the last line" };
        var quiet = new Option<bool>("--quiet") { Description = "No progress bar or per-epoch table" };
        var label = new Option<string?>("--label") { Description = "CSV label column (default: 'label', else the last column)" };
        var dtype = new Option<string>("--dtype") { Description = "float32 or float64", DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var momentum = new Option<double>("--momentum") { Description = "SGD momentum", DefaultValueFactory = _ => 0.9 };
        var nesterov = new Option<bool>("--nesterov") { Description = "Nesterov momentum (SGD)" };
        var weightDecay = new Option<double?>("--weight-decay") { Description = "Weight decay (L2 for sgd/adam/rmsprop, decoupled for adamw) [default: 0, adamw 0.01]" };
        var schedule = new Option<string>("--schedule") { Description = "Learning-rate schedule over the run: cosine (default), step or constant", DefaultValueFactory = _ => "cosine" };
        schedule.AcceptOnlyFromAmong("constant", "step", "cosine");
        var warmup = new Option<int>("--warmup") { Description = "Linear warm-up steps", DefaultValueFactory = _ => 0 };
        var clip = new Option<double>("--clip") { Description = "Clip gradients to this global L2 norm (0: off)", DefaultValueFactory = _ => 0.0 };
        var patience = new Option<int>("--patience") { Description = "Stop after this many epochs without a better validation loss (0: off)", DefaultValueFactory = _ => 0 };
        var diagnostics = new Option<bool>("--diagnostics") { Description = "Record per-layer gradient health every epoch (norms, update ratio, dead/saturated units)" };
        var plots = new Option<string?>("--plots") { Description = "Write loss, accuracy and gradient-norm plots (PNG) and history.json to this directory" };
        var init = new Option<string>("--init") { Description = "default, xavier_uniform, xavier_normal, he_uniform or he_normal", DefaultValueFactory = _ => "default" };

        var cmd = new Command("train", "Train an MLP classifier (default: the reference MNIST run)")
        {
            data, layers, activation, optimizer, lr, batch, epochs, seed, threads, output, checkpoint, resume, json, quiet, label, dtype,
            momentum, nesterov, weightDecay, schedule, warmup, clip, patience, init, diagnostics, plots,
        };
        cmd.SetAction(r =>
        {
            var o = new TrainArgs(
                r.GetValue(data)!, r.GetValue(layers), r.GetValue(activation)!, r.GetValue(threads), r.GetValue(output)!,
                r.GetValue(checkpoint), r.GetValue(resume), r.GetValue(json), r.GetValue(quiet), r.GetValue(label), r.GetValue(init)!,
                r.GetValue(diagnostics) || r.GetValue(plots) is not null, r.GetValue(plots),
                new TrainOptions
                {
                    Epochs = r.GetValue(epochs), BatchSize = r.GetValue(batch), Seed = r.GetValue(seed), LearningRate = r.GetValue(lr),
                    Optimizer = r.GetValue(optimizer)!, Momentum = r.GetValue(momentum), Nesterov = r.GetValue(nesterov),
                    WeightDecay = r.GetValue(weightDecay), Schedule = r.GetValue(schedule)!, WarmupSteps = r.GetValue(warmup),
                    ClipNorm = r.GetValue(clip), Patience = r.GetValue(patience),
                });
            return r.GetValue(dtype) == "float64" ? Run<double>(o, catalog) : Run<float>(o, catalog);
        });
        return cmd;
    }

    public sealed record TrainArgs(string Data, string? Layers, string Activation, int Threads, string Out, string? Checkpoint, string? Resume,
        bool Json, bool Quiet, string? Label, string Init, bool Diagnostics, string? Plots, TrainOptions Options);

    private static void Validate(TrainArgs a, Catalog catalog)
    {
        var o = a.Options;
        if (o.BatchSize <= 0) throw new UsageException($"--batch {o.BatchSize}: the batch size must be at least 1");
        if (o.Epochs <= 0) throw new UsageException($"--epochs {o.Epochs}: must be at least 1");
        if (!(o.LearningRate > 0) || !double.IsFinite(o.LearningRate)) throw new UsageException($"--lr {o.LearningRate}: must be a positive number");
        if (a.Threads < 0) throw new UsageException($"--threads {a.Threads}: must be 0 (all cores) or more");
        if (o.Patience < 0) throw new UsageException($"--patience {o.Patience}: must be 0 (off) or more");
        if (o.ClipNorm < 0) throw new UsageException($"--clip {o.ClipNorm}: must be 0 (off) or positive");
        if (!(o.Momentum >= 0 && o.Momentum < 1)) throw new UsageException($"--momentum {o.Momentum}: must be in [0, 1)");
        if (o.WeightDecay is double wd && (!(wd >= 0) || !double.IsFinite(wd))) throw new UsageException($"--weight-decay {wd}: must be 0 or positive");
        if (o.WarmupSteps < 0) throw new UsageException($"--warmup {o.WarmupSteps}: must be 0 (off) or more steps");
        if (o.Optimizer is not ("sgd" or "adam" or "adamw" or "rmsprop")) throw new UsageException($"--optimizer '{o.Optimizer}': expected sgd, adam, adamw or rmsprop");
        if (catalog.Activations.Find(a.Activation) is not { IsHiddenChoice: true })
            throw new UsageException($"--activation '{a.Activation}': expected one of {string.Join(", ", catalog.Activations.HiddenNames)}");
        try { Initializers.Parse(a.Init); } catch (ArgumentException e) { throw new UsageException("--init: " + e.Message); }
    }

    private static string CreateDir(string dir)
    {
        Directory.CreateDirectory(dir);
        return dir;
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

    private static int Run<T>(TrainArgs a, Catalog catalog) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Validate(a, catalog);
        Cli.CheckpointHint = a.Checkpoint is not null && File.Exists(a.Checkpoint) ? a.Checkpoint : null;
        var o = a.Options;
        int[]? sizes = a.Layers is null ? null : ParseLayers(a.Layers);
        KernelThreads.Count = a.Threads;

        var data = DataLoading.Prepare(a.Data, a.Label, o.Seed);
        if (data.Train.Count == 0 || data.Test.Count == 0)
            throw new UsageException($"{a.Data}: {data.Train.Count + data.Validation.Count + data.Test.Count} rows are too few for training and a held-out test split");
        sizes ??= data.Kind == "mnist" ? [784, 512, 256, 10] : [data.Features, 64, data.Classes];
        if (sizes[0] != data.Features)
            throw new UsageException($"--layers starts with {sizes[0]} but {a.Data} has {data.Features} features per sample");
        if (sizes[^1] != data.Classes)
            throw new UsageException($"--layers ends with {sizes[^1]} but {a.Data} has {data.Classes} classes");

        var ck = a.Resume is null ? null : Checkpoint.Load<T>(a.Resume);
        var run = a.Resume is null && a.Checkpoint is null ? null
            : new Checkpoint.RunIdentity(o.Seed, o.BatchSize, o.Epochs, o.Schedule, Checkpoint.DataFingerprint(data.Train));
        var net = ck?.Model.Network ?? Initializers.Mlp<T>(sizes, a.Activation, o.Seed, Initializers.Parse(a.Init), catalog);
        if (ck is not null && !ModelFile.ArchitectureOf(net).Sizes.SequenceEqual(sizes))
            throw new UsageException($"--resume {a.Resume}: the checkpoint's layers are {string.Join(",", ModelFile.ArchitectureOf(net).Sizes)}, not {string.Join(",", sizes)}");
        var trainer = new Trainer<T>(net, o) { CollectDiagnostics = a.Diagnostics };
        var health = new List<LayerHealth[]>();
        int startEpoch = 1;
        var history = new List<EpochResult>();
        double bestVal = double.PositiveInfinity;
        int sinceBest = 0;
        if (ck is not null)
        {
            if (ck.Seed is int s && s != o.Seed)
                throw new UsageException($"--resume {a.Resume}: the checkpoint was trained with --seed {s}, which fixes the data split and batch order; resume with --seed {s}");
            if (ck.BatchSize is int b && b != o.BatchSize)
                throw new UsageException($"--resume {a.Resume}: the checkpoint was trained with --batch {b}; resume with --batch {b}");
            if (ck.Data is string d && d != run!.Data)
                throw new UsageException($"--resume {a.Resume}: the checkpoint was trained on other data (fingerprint {d}, this --data {a.Data} gives {run.Data}); resume with the same data");
            if (ck.Schedule == "cosine" && ck.Epochs is int e && (o.Schedule != "cosine" || o.Epochs != e))
                throw new UsageException($"--resume {a.Resume}: the checkpoint's cosine learning rate spans --epochs {e}; resume with --epochs {e} --schedule cosine (or train with --schedule constant to extend runs)");
            ck.RestoreOptimizer(trainer.Optimizer, a.Resume!);
            startEpoch = ck.Epoch + 1;
            history.AddRange(ck.History);
            bestVal = ck.BestValidationLoss;
            sinceBest = ck.EpochsSinceBest;
        }

        var loader = new BatchLoader(data.Train, o.BatchSize, o.Seed);
        var schedule = trainer.Schedule(loader.BatchesPerEpoch);
        var ansi = Cli.Ansi();
        bool live = !a.Quiet && !a.Json && ansi.Profile.Capabilities.Interactive;
        if (!a.Quiet)
        {
            Console.WriteLine($"training {string.Join("-", sizes)} {a.Activation} on {data.Kind} ({data.Train.Count} train, {data.Validation.Count} validation, {data.Test.Count} test), " +
                $"{o.Optimizer} lr {o.LearningRate}, batch {o.BatchSize}, {typeof(T).Name.ToLowerInvariant().Replace("single", "float32").Replace("double", "float64")}, {KernelThreads.Count} threads");
            Console.WriteLine($"{"epoch",5} {"train loss",11} {"train acc",9} {"val loss",9} {"val acc",8} {"lr",9} {"seconds",8} {"samples/s",10}");
        }

        double trainSeconds = history.Sum(h => h.Seconds);
        long samplesTrained = (long)history.Count * data.Train.Count;
        bool stopped = false;
        for (int epoch = startEpoch; epoch <= o.Epochs && !stopped; epoch++)
        {
            var sw = Stopwatch.StartNew();
            (double loss, double acc, double? gnorm) r;
            if (live)
            {
                (double, double, double?) result = default;
                int e = epoch;
                ansi.Progress().AutoClear(true).HideCompleted(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask($"epoch {e}/{o.Epochs}", maxValue: data.Train.Count);
                        int calls = 0;
                        result = trainer.TrainEpoch(loader, e, schedule, seen =>
                        {
                            if (++calls % 16 != 0 && seen != data.Train.Count) return;
                            task.Value = seen;
                            double rate = seen / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
                            task.Description = $"epoch {e}/{o.Epochs} {rate,8:N0} samples/s";
                        });
                    });
                r = result;
            }
            else r = trainer.TrainEpoch(loader, epoch, schedule);
            sw.Stop();
            double secs = sw.Elapsed.TotalSeconds;
            trainSeconds += secs;
            samplesTrained += data.Train.Count;
            if (!double.IsFinite(r.loss))
                throw new NonFiniteValueException($"epoch {epoch}: the training loss is {r.loss}; lower --lr (now {o.LearningRate}) or use --clip");
            var (vl, va) = data.Validation.Count > 0 ? trainer.Evaluate(data.Validation) : (double.NaN, double.NaN);
            if (data.Validation.Count > 0 && !double.IsFinite(vl))
                throw new NonFiniteValueException($"epoch {epoch}: the validation loss is {vl} (the weights have diverged; ‖W‖ of the layers: " +
                    string.Join(", ", net.Layers.Select(l => (l.MainWeight() is { } w ? Diagnostics.Norm<T>(w.Value.Span) : 0).ToString("0.0e0"))) +
                    $"); lower --lr (now {o.LearningRate}) or use --clip");
            var er = new EpochResult(epoch, r.loss, r.acc, data.Validation.Count > 0 ? vl : null, data.Validation.Count > 0 ? va : null,
                trainer.Optimizer.LearningRate, secs, data.Train.Count / secs, r.gnorm);
            history.Add(er);
            if (!a.Quiet)
                Console.WriteLine($"{epoch,5} {r.loss,11:F4} {r.acc * 100,8:F2}% {vl,9:F4} {va * 100,7:F2}% {er.LearningRate,9:G3} {secs,8:F2} {er.SamplesPerSecond,10:N0}");
            if (trainer.LastDiagnostics is { } d)
            {
                health.Add(d);
                if (!a.Quiet)
                    foreach (var l in d)
                        Console.WriteLine($"      layer {l.Layer} {l.Activation,-10} ‖∂L/∂W‖ {l.WeightGradientNorm,9:0.00e0}  ‖W‖ {l.WeightNorm,8:F3}  update/weight {l.UpdateRatio ?? 0,8:0.00e0}  ‖∂L/∂h‖ {l.OutputGradientNorm,9:0.00e0}  dead {l.DeadFraction ?? 0,6:P1}  saturated {l.SaturatedFraction ?? 0,6:P1}");
            }
            if (data.Validation.Count > 0)
            {
                if (vl < bestVal - 1e-12) { bestVal = vl; sinceBest = 0; } else sinceBest++;
                if (o.Patience > 0 && sinceBest >= o.Patience)
                {
                    if (!a.Quiet) Console.WriteLine($"early stop: no better validation loss for {o.Patience} epochs");
                    stopped = true;
                }
            }
            if (a.Checkpoint is not null) Cli.CheckpointHint = a.Checkpoint;
            if (a.Checkpoint is not null)
                Checkpoint.Save(a.Checkpoint, net, trainer.Optimizer, epoch, history, bestVal, sinceBest, data.LabelNames, data.Standardizer, run!);
        }

        var (testLoss, testAcc) = trainer.Evaluate(data.Test);
        if (health.Count > 0 && !a.Quiet) Console.WriteLine($"gradient health: {Diagnostics.Verdict(health[^1])}");
        if (a.Plots is not null)
        {
            AtomicFile.WriteAllText(Path.Combine(CreateDir(a.Plots), "history.json"),
                JsonSerializer.Serialize(new { epochs = history, diagnostics = health }, ModelFile.JsonOptions));
            var files = TrainingPlots.Write(a.Plots, history, health);
            if (!a.Quiet) Console.WriteLine($"plots: {string.Join(", ", files)}");
        }
        ModelFile.Save(a.Out, net, data.LabelNames, data.Standardizer);
        if (!a.Quiet)
            Console.WriteLine($"test accuracy {testAcc * 100:F2}%, test loss {testLoss:F4}; trained {trainSeconds:F2} s ({samplesTrained / Math.Max(1e-9, trainSeconds):N0} samples/s); saved {a.Out}");
        if (a.Json)
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("test_accuracy", testAcc);
                w.WriteNumber("test_loss", testLoss);
                w.WriteNumber("train_seconds", Math.Round(trainSeconds, 4));
                w.WriteNumber("epochs", history.Count);
                w.WriteNumber("samples_per_s", Math.Round(samplesTrained / Math.Max(1e-9, trainSeconds), 1));
                w.WriteEndObject();
            });
        return 0;
    }
}
