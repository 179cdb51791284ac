using System.Text.Json.Nodes;
using Backprop.IO;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>train --resume takes the run's options from the checkpoint; options given explicitly must agree with it.</summary>
public sealed class ResumeFromCheckpointTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    // None of them the default, so that a resume that fell back to a default would show; the schedule is the default,
    // cosine, whose rate spans the 3 epochs.
    private static readonly string[] Options = ["--data", Iris, "--layers", "4,8,3", "--activation", "tanh", "--optimizer", "sgd", "--lr", "0.05",
        "--momentum", "0.8", "--nesterov", "--batch", "8", "--seed", "3", "--epochs", "3", "--warmup", "4", "--clip", "2"];

    /// <summary>The job the options above give (see TrainCommand), for the library to make a checkpoint of an unfinished run.</summary>
    private static TrainingJob Job => new()
    {
        Data = Iris, Layers = [4, 8, 3], Activation = "tanh",
        Options = new TrainOptions
        {
            Optimizer = "sgd", LearningRate = 0.05, Momentum = 0.8, Nesterov = true, BatchSize = 8, Seed = 3, Epochs = 3, WarmupSteps = 4, ClipNorm = 2,
            Schedule = "cosine",
        },
    };

    /// <summary>A checkpoint of epoch 1 of the 3-epoch run: the run is cancelled once epoch 1 is written.</summary>
    private string Unfinished(string name = "ck.safetensors")
    {
        string ck = _tmp.File(name);
        using var cancel = new CancellationTokenSource();
        var run = TrainingRun<float>.Create(Job, checkpointPath: ck);
        Assert.ThrowsAny<OperationCanceledException>(() => run.Run(null, new Reporter(cancel), cancel.Token));
        Assert.Equal(1, Checkpoint.Load<float>(ck).Epoch);
        return ck;
    }

    private sealed class Reporter(CancellationTokenSource cancel) : IProgress<EpochReport>
    {
        public void Report(EpochReport value) => cancel.Cancel();
    }

    private string Whole()
    {
        string path = _tmp.File("whole.safetensors");
        var r = CliRunner.Run(["train", .. Options, "--out", path, "--quiet"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return path;
    }

    private static void SameModel(string a, string b) =>
        TrainingAssert.BitIdentical(ModelFile.Load<float>(a).Network, ModelFile.Load<float>(b).Network);

    [Fact]
    public void Resume_alone_continues_the_run_with_the_checkpoints_options_to_the_same_bits()
    {
        string ck = Unfinished();
        string resumed = _tmp.File("resumed.safetensors");
        var r = CliRunner.Run("train", "--resume", ck, "--out", resumed);
        Assert.True(r.ExitCode == 0, r.Stderr);
        // the header shows the checkpoint's network and optimizer, and the table continues at epoch 2
        Assert.StartsWith("training 4-8-3 tanh on csv", r.Stdout);
        Assert.Contains("sgd lr 0.05, batch 8, float32", r.Stdout);
        var rows = r.Stdout.Split('\n').Where(l => l.Length > 5 && char.IsDigit(l.TrimStart()[0]) && l.Contains('%')).Select(l => l.TrimStart().Split(' ')[0]);
        Assert.Equal(["2", "3"], rows);
        SameModel(Whole(), resumed);
    }

    [Fact]
    public void Options_repeated_with_the_checkpoints_values_are_accepted()
    {
        string ck = Unfinished();
        string resumed = _tmp.File("resumed.safetensors");
        // the label column by its name (the default it stood for), SGD's default weight decay written out, and an
        // initialisation, which has nothing to do on resume (the weights come from the checkpoint), by an alias
        var r = CliRunner.Run(["train", .. Options, "--dtype", "float32", "--schedule", "cosine", "--label", "label", "--weight-decay", "0",
            "--init", "he", "--resume", ck, "--out", resumed, "--quiet"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        SameModel(Whole(), resumed);
        var job = Checkpoint.RecordedJob(ck)!;
        Assert.Equal(("label", "default"), (job.LabelColumn, job.Init));   // the run's own initialisation is kept
    }

    [Fact]
    public void The_job_records_the_resolved_label_column_and_the_full_data_path()
    {
        string ck = Unfinished();
        var job = Checkpoint.RecordedJob(ck)!;
        Assert.Equal("label", job.LabelColumn);
        Assert.Equal(Path.GetFullPath(Iris), job.Data);
        // a path relative to the working directory is recorded in full
        var relative = TrainingRun<float>.Create(Job with { Data = Path.GetRelativePath(Environment.CurrentDirectory, Iris) });
        Assert.False(Path.IsPathRooted(Path.GetRelativePath(Environment.CurrentDirectory, Iris)));
        Assert.Equal(Path.GetFullPath(Iris), relative.Job.Data);
    }

    [Fact]
    public void A_recorded_data_path_that_is_gone_is_named_as_the_checkpoints_and_data_from_elsewhere_resumes()
    {
        string csv = _tmp.File("iris-moved.csv");
        File.Copy(Iris, csv);
        string ck = _tmp.File("ck.safetensors");
        Assert.Equal(0, CliRunner.Run("train", "--data", csv, "--epochs", "3", "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet").ExitCode);
        File.Delete(csv);
        var r = CliRunner.Run("train", "--resume", ck, "--out", _tmp.File("x.safetensors"), "--quiet");
        TrainingAssert.UsageError(r, $"the checkpoint recorded --data {csv}");
        Assert.Contains("give --data", r.Stderr);
        // the same rows from elsewhere: the fingerprint agrees
        var moved = CliRunner.Run("train", "--resume", ck, "--data", Iris, "--out", _tmp.File("x.safetensors"), "--json");
        Assert.True(moved.ExitCode == 0, moved.Stderr);
        Assert.Equal(3, moved.Json.GetProperty("epochs").GetInt32());
    }

    [Fact]
    public void Resume_alone_keeps_checkpointing_to_the_checkpoint_it_resumed()
    {
        string ck = Unfinished();
        var r = CliRunner.Run("train", "--resume", ck, "--out", _tmp.File("resumed.safetensors"), "--quiet");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var c = Checkpoint.Load<float>(ck);
        Assert.Equal(3, c.Epoch);
        Assert.Equal([1, 2, 3], c.History.Select(h => h.Epoch));
    }

    [Fact]
    public void Resume_alone_of_a_run_that_had_stopped_early_trains_no_more_epochs()
    {
        // at a rate of 1e-30 no weight moves: epoch 2 is no better than epoch 1, and patience 1 stops the run there
        string ck = _tmp.File("ck.safetensors");
        var first = CliRunner.Run("train", "--data", Iris, "--lr", "1e-30", "--patience", "1", "--epochs", "10", "--checkpoint", ck,
            "--out", _tmp.File("m.safetensors"), "--json");
        Assert.Equal(2, first.Json.GetProperty("epochs").GetInt32());
        var r = CliRunner.Run("train", "--resume", ck, "--out", _tmp.File("r.safetensors"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(2, r.Json.GetProperty("epochs").GetInt32());
        Assert.Contains("early stop: no better validation loss for 1 epochs, already at the checkpoint", r.Stdout);
        Assert.Equal(2, Checkpoint.Load<float>(ck).Epoch);
    }

    [Theory]
    [InlineData("--resume")]
    [InlineData("--checkpoint")]
    public void The_model_may_not_replace_a_checkpoint(string flag)
    {
        string ck = Unfinished();
        var before = File.ReadAllBytes(ck);
        string[] args = flag == "--resume"
            ? ["train", "--resume", ck, "--out", ck, "--quiet"]
            : ["train", .. Options, "--checkpoint", ck, "--out", ck, "--quiet"];
        var r = CliRunner.Run(args);
        TrainingAssert.UsageError(r, $"--out {ck} is also the {flag} file");
        Assert.Equal(before, File.ReadAllBytes(ck));
    }

    [Theory]
    [InlineData("--out")]
    [InlineData("--checkpoint")]
    public void A_missing_directory_of_the_model_or_checkpoint_is_made(string flag)
    {
        string dir = Path.Combine(_tmp.Path, "runs", "first");
        string path = Path.Combine(dir, "m.safetensors");
        string[] args = flag == "--out"
            ? ["train", .. Options, "--out", path, "--quiet", "--json"]
            : ["train", .. Options, "--checkpoint", path, "--out", _tmp.File("m.safetensors"), "--quiet", "--json"];
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void A_directory_the_file_system_refuses_is_said_in_its_words_not_dotnets()
    {
        // /proc takes no new entries: .NET says "Could not find file '/proc/x'", which named neither the cause nor the flag
        if (!OperatingSystem.IsLinux()) return;
        var r = CliRunner.Run(["train", .. Options, "--plots", "/proc/backprop-plots", "--out", _tmp.File("m.safetensors"), "--quiet", "--json"]);
        TrainingAssert.UsageError(r, "--plots /proc/backprop-plots: cannot make the directory /proc/backprop-plots (its directory takes no new files)");
        Assert.False(File.Exists(_tmp.File("m.safetensors")));
    }

    [Theory]
    [InlineData("--out")]
    [InlineData("--checkpoint")]
    public void A_directory_that_cannot_be_made_stops_the_run_before_training(string flag)
    {
        string blocker = _tmp.File("a-file");
        File.WriteAllText(blocker, "not a directory");
        string dir = Path.Combine(blocker, "sub");
        string path = Path.Combine(dir, "m.safetensors");
        string[] args = flag == "--out"
            ? ["train", .. Options, "--out", path, "--quiet", "--json"]
            : ["train", .. Options, "--checkpoint", path, "--out", _tmp.File("m.safetensors"), "--quiet", "--json"];
        var r = CliRunner.Run(args);
        TrainingAssert.UsageError(r, $"{flag} {path}: cannot make the directory {dir} ({blocker} is a file)");
        Assert.Equal("", r.Stdout);   // no epoch ran, no result line
        Assert.False(File.Exists(_tmp.File("m.safetensors")));
        Assert.Equal("not a directory", File.ReadAllText(blocker));
    }

    [Fact]
    public void A_damaged_recorded_job_is_a_format_error_naming_the_file_and_the_field()
    {
        string ck = Unfinished();
        var file = SafeTensorsFile.Read(ck);
        var meta = file.Metadata.ToDictionary();
        var progress = JsonNode.Parse(meta["checkpoint"])!.AsObject();
        progress["job"]!.AsObject()["options"] = null;
        meta["checkpoint"] = progress.ToJsonString();
        SafeTensorsFile.Write(ck, file.Names.Select(n => SafeTensorEntry.From(n, file.GetTensor<float>(n))).ToArray(), meta);

        var e = Assert.Throws<DataFormatException>(() => Checkpoint.RecordedJob(ck));
        Assert.Contains(ck, e.Message);
        Assert.Contains("job.options", e.Message);
        TrainingAssert.UsageError(CliRunner.Run("train", "--resume", ck, "--out", _tmp.File("x.safetensors"), "--quiet"), "job.options");
    }

    [Theory]
    [InlineData("--activation", "relu", "--activation tanh")]
    [InlineData("--optimizer", "adam", "--optimizer sgd")]
    [InlineData("--momentum", "0.9", "--momentum 0.8")]
    [InlineData("--layers", "4,16,3", "--layers 4,8,3")]
    [InlineData("--seed", "1", "--seed 3")]
    [InlineData("--batch", "16", "--batch 8")]
    [InlineData("--schedule", "constant", "--schedule cosine")]
    [InlineData("--epochs", "5", "--epochs 3")]
    [InlineData("--dtype", "float64", "--dtype float32")]
    public void An_option_that_contradicts_the_checkpoint_is_refused_in_one_line(string option, string value, string recorded)
    {
        string ck = Unfinished();
        var r = CliRunner.Run("train", "--resume", ck, option, value, "--out", _tmp.File("x.safetensors"), "--quiet");
        TrainingAssert.UsageError(r, $"{option} {value} contradicts the checkpoint");
        Assert.Contains(recorded, r.Stderr);
        Assert.False(File.Exists(_tmp.File("x.safetensors")));
        Assert.Equal(1, Checkpoint.Load<float>(ck).Epoch);
    }

    [Fact]
    public void The_rate_and_clipping_may_change_on_resume()
    {
        string ck = Unfinished();
        var r = CliRunner.Run("train", "--resume", ck, "--lr", "0.01", "--clip", "0.5", "--checkpoint", ck, "--out", _tmp.File("x.safetensors"), "--quiet");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var job = Checkpoint.RecordedJob(ck)!;
        Assert.Equal((0.01, 0.5, 3), (job.Options.LearningRate, job.Options.ClipNorm, job.Options.Seed));
        Assert.Equal(3, Checkpoint.Load<float>(ck).Epoch);
    }

    [Fact]
    public void A_checkpoint_of_other_layers_than_the_default_resumes_alone()
    {
        // Before jobs were recorded, this failed with "the checkpoint's layers are 4,8,3, not 4,64,3".
        string ck = _tmp.File("ck.safetensors");
        Assert.Equal(0, CliRunner.Run("train", "--data", Iris, "--layers", "4,8,3", "--epochs", "2", "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet").ExitCode);
        var r = CliRunner.Run("train", "--resume", ck, "--out", _tmp.File("r.safetensors"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith("training 4-8-3 relu", r.Stdout);
        Assert.Equal(2, r.Json.GetProperty("epochs").GetInt32());
    }

    /// <summary>The checkpoint as written before runs recorded their job: __metadata__.checkpoint without "job".</summary>
    private static void ForgetTheJob(string ck)
    {
        var file = SafeTensorsFile.Read(ck);
        var meta = file.Metadata.ToDictionary();
        var progress = JsonNode.Parse(meta["checkpoint"])!.AsObject();
        Assert.True(progress.Remove("job"));
        meta["checkpoint"] = progress.ToJsonString();
        SafeTensorsFile.Write(ck, file.Names.Select(n => SafeTensorEntry.From(n, file.GetTensor<float>(n))).ToArray(), meta);
        Assert.Null(Checkpoint.RecordedJob(ck));
    }

    [Fact]
    public void An_old_checkpoint_without_a_recorded_job_resumes_with_the_options_given_as_before()
    {
        string ck = Unfinished();
        ForgetTheJob(ck);
        string resumed = _tmp.File("resumed.safetensors");
        var r = CliRunner.Run(["train", .. Options, "--resume", ck, "--out", resumed, "--quiet"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        SameModel(Whole(), resumed);
        // its recorded seed, batch, optimizer and layers are still checked
        var other = Options.ToArray();
        other[Array.IndexOf(other, "--seed") + 1] = "4";
        TrainingAssert.UsageError(CliRunner.Run(["train", .. other, "--resume", ck, "--out", _tmp.File("x.safetensors"), "--quiet"]), "--seed 3");
    }

    [Fact]
    public void An_old_checkpoint_takes_its_layers_and_activation_from_its_network()
    {
        string ck = Unfinished();
        ForgetTheJob(ck);
        // no --layers or --activation: the checkpoint's tanh network, recorded as tanh in the checkpoint it writes
        string[] rest = ["--data", Iris, "--optimizer", "sgd", "--seed", "3", "--batch", "8", "--epochs", "3"];
        var r = CliRunner.Run(["train", .. rest, "--resume", ck, "--out", _tmp.File("r.safetensors")]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith("training 4-8-3 tanh", r.Stdout);
        var job = Checkpoint.RecordedJob(ck)!;
        Assert.Equal(("tanh", "4,8,3"), (job.Activation, job.Format(TrainingSetting.Layers)));

        string old = Unfinished("old.safetensors");
        ForgetTheJob(old);
        TrainingAssert.UsageError(CliRunner.Run(["train", .. rest, "--activation", "relu", "--resume", old, "--out", _tmp.File("x.safetensors")]),
            "--activation relu contradicts the checkpoint");
        TrainingAssert.UsageError(CliRunner.Run(["train", .. rest, "--layers", "4,16,3", "--resume", old, "--out", _tmp.File("x.safetensors")]),
            "--layers 4,16,3 contradicts the checkpoint");
        Assert.False(File.Exists(_tmp.File("x.safetensors")));
    }

    [Fact]
    public void Resume_alone_refuses_data_that_changed_since_the_checkpoint_and_names_it()
    {
        string csv = _tmp.File("iris-copy.csv");
        File.Copy(Iris, csv);
        string ck = _tmp.File("ck.safetensors");
        Assert.Equal(0, CliRunner.Run("train", "--data", csv, "--epochs", "2", "--schedule", "constant", "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet").ExitCode);
        // the first column of two rows in three changed (not by one affine map, which standardisation would undo)
        var lines = File.ReadAllLines(csv);
        for (int i = 1; i < lines.Length; i++)
        {
            var cells = lines[i].Split(',');
            cells[0] = (double.Parse(cells[0], System.Globalization.CultureInfo.InvariantCulture) + 0.1 * (i % 3)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            lines[i] = string.Join(',', cells);
        }
        File.WriteAllLines(csv, lines);
        var r = CliRunner.Run("train", "--resume", ck, "--epochs", "3", "--out", _tmp.File("x.safetensors"), "--quiet");
        TrainingAssert.UsageError(r, "other data");
        Assert.Contains($"--data {csv}", r.Stderr);
    }
}
