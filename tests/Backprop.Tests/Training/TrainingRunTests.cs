using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>The training run as a library: no CLI, no console.</summary>
public sealed class TrainingRunTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    private static TrainingJob Job(int epochs = 3, string schedule = "constant", double lr = 0.01, int patience = 0) => new()
    {
        Data = Iris,
        Layers = [4, 16, 3],
        Options = new TrainOptions { Epochs = epochs, BatchSize = 16, Seed = 5, LearningRate = lr, Schedule = schedule, Patience = patience },
    };

    /// <summary>Reports on the calling thread (System.Progress would post them to the thread pool).</summary>
    private sealed class Recorder<T>(Action<T>? also = null) : IProgress<T>
    {
        public List<T> Reports { get; } = [];
        public void Report(T value)
        {
            Reports.Add(value);
            also?.Invoke(value);
        }
    }

    [Fact]
    public void A_run_trains_every_epoch_reports_progress_and_evaluates_on_the_test_split()
    {
        var run = TrainingRun<float>.Create(Job(epochs: 4));
        var batches = new Recorder<BatchProgress>();
        var epochs = new Recorder<EpochReport>();
        var result = run.Run(batches, epochs);

        Assert.Equal([1, 2, 3, 4], result.History.Select(h => h.Epoch));
        Assert.Equal(result.History, epochs.Reports.Select(r => r.Result));
        Assert.False(result.StoppedEarly);
        // 96 training rows in batches of 16: six reports per epoch, counting the samples up to the epoch's size
        int train = run.Data.Train.Count, perEpoch = (train + 15) / 16;
        Assert.Equal(4 * perEpoch, batches.Reports.Count);
        foreach (var epoch in batches.Reports.GroupBy(b => b.Epoch))
        {
            var seen = epoch.Select(b => b.Samples).ToArray();
            Assert.Equal(seen.Order(), seen);
            Assert.Equal(train, seen[^1]);
            Assert.All(epoch, b => Assert.Equal(4, b.Epochs));
        }
        // the result's test figures are the network's on the test split
        var (loss, accuracy) = Trainer<float>.Evaluate(run.Network, run.Data.Test);
        Assert.Equal(loss, result.TestLoss);
        Assert.Equal(accuracy, result.TestAccuracy);
        Assert.True(result.TestAccuracy > 0.6, $"test accuracy {result.TestAccuracy} after 4 epochs of iris");
        Assert.Equal(4L * train, result.SamplesTrained);
        Assert.Throws<InvalidOperationException>(() => run.Run());
    }

    [Fact]
    public void The_same_job_gives_the_same_bits()
    {
        var a = TrainingRun<float>.Create(Job());
        var b = TrainingRun<float>.Create(Job());
        a.Run();
        b.Run();
        TrainingAssert.BitIdentical(a.Network, b.Network);
    }

    [Fact]
    public void Early_stopping_stops_after_patience_epochs_without_a_better_validation_loss()
    {
        // At a rate of 1e-30 no float32 weight moves, so the validation loss of epoch 2 is no better than epoch 1's.
        var epochs = new Recorder<EpochReport>();
        var result = TrainingRun<float>.Create(Job(epochs: 10, lr: 1e-30, patience: 1)).Run(null, epochs);
        Assert.True(result.StoppedEarly);
        Assert.Equal(2, result.History.Count);
        Assert.Equal([false, true], epochs.Reports.Select(r => r.StopsEarly));

        var patient = TrainingRun<float>.Create(Job(epochs: 10, lr: 1e-30, patience: 3)).Run();
        Assert.Equal(4, patient.History.Count);
    }

    [Fact]
    public void A_resumed_run_whose_checkpoint_had_already_stopped_early_stops_at_once_unless_given_more_patience()
    {
        // killed after the checkpoint of the epoch it stopped at, before it saved its model
        string ck = _tmp.File("ck.safetensors");
        var first = TrainingRun<float>.Create(Job(epochs: 10, lr: 1e-30, patience: 1), checkpointPath: ck).Run();
        Assert.Equal(2, first.History.Count);
        Assert.Equal(1, Checkpoint.Load<float>(ck).EpochsSinceBest);

        var epochs = new Recorder<EpochReport>();
        var resumed = TrainingRun<float>.Create(Checkpoint.RecordedJob(ck)!, Checkpoint.Load<float>(ck), ck).Run(null, epochs);
        Assert.True(resumed.StoppedEarly);
        Assert.Equal([1, 2], resumed.History.Select(h => h.Epoch));
        Assert.Empty(epochs.Reports);
        Assert.Equal(2, Checkpoint.Load<float>(ck).Epoch);

        // a larger patience lets it go on: epochs 3 and 4 bring it to 3 epochs without a better loss
        var recorded = Checkpoint.RecordedJob(ck)!;
        var patient = TrainingRun<float>.Create(recorded with { Options = recorded.Options with { Patience = 3 } }, Checkpoint.Load<float>(ck)).Run();
        Assert.Equal([1, 2, 3, 4], patient.History.Select(h => h.Epoch));
    }

    [Fact]
    public void A_job_of_another_precision_than_the_run_is_refused()
    {
        var e = Assert.Throws<InvalidTrainingSettingException>(() => TrainingRun<float>.Create(Job() with { Precision = "float64" }));
        Assert.Equal(TrainingSetting.Precision, e.Setting);
        Assert.Contains("float64", e.Message);
        Assert.Contains("float32", e.Message);
        Assert.Equal("float64", TrainingRun<double>.Create(Job() with { Precision = "float64" }).Job.Precision);
    }

    [Fact]
    public void Resuming_a_checkpoint_continues_bit_for_bit_and_the_checkpoint_records_the_job()
    {
        string ck = _tmp.File("ck.safetensors");
        var whole = TrainingRun<float>.Create(Job(epochs: 3));
        whole.Run();

        var first = TrainingRun<float>.Create(Job(epochs: 1), checkpointPath: ck);
        first.Run();
        var recorded = Checkpoint.RecordedJob(ck);
        Assert.NotNull(recorded);
        Assert.Equal(first.Job, recorded);
        Assert.Equal([4, 16, 3], recorded.Layers!);
        Assert.Equal("float32", recorded.Precision);
        Assert.Equal(0.0, recorded.Options.WeightDecay);   // resolved: Adam's default

        var resumed = TrainingRun<float>.Create(recorded with { Options = recorded.Options with { Epochs = 3 } }, Checkpoint.Load<float>(ck));
        Assert.Equal(2, resumed.FirstEpoch);
        var result = resumed.Run();
        Assert.Equal([1, 2, 3], result.History.Select(h => h.Epoch));
        TrainingAssert.BitIdentical(whole.Network, resumed.Network);
    }

    [Fact]
    public void A_checkpoint_refuses_a_job_that_contradicts_it()
    {
        string ck = _tmp.File("ck.safetensors");
        TrainingRun<float>.Create(Job(epochs: 1), checkpointPath: ck).Run();
        var job = Job(epochs: 2);
        var e = Assert.Throws<CheckpointMismatchException>(() =>
            TrainingRun<float>.Create(job with { Options = job.Options with { Seed = 6 } }, Checkpoint.Load<float>(ck)));
        Assert.Equal(TrainingSetting.Seed, e.Setting);
        Assert.Equal("5", e.CheckpointValue);
        Assert.Equal("6", e.GivenValue);
        Assert.DoesNotContain("--", e.Message);

        var other = Assert.Throws<CheckpointMismatchException>(() =>
            TrainingRun<float>.Create(job with { Activation = "tanh" }, Checkpoint.Load<float>(ck)));
        Assert.Equal(TrainingSetting.Activation, other.Setting);
    }

    [Fact]
    public void Divergence_names_the_step_and_a_remedy_without_flags_and_keeps_the_last_checkpoint()
    {
        string ck = _tmp.File("ck.safetensors");
        TrainingRun<float>.Create(Job(epochs: 2), checkpointPath: ck).Run();
        var before = File.ReadAllBytes(ck);
        var recorded = Checkpoint.RecordedJob(ck)!;
        var wild = recorded with { Options = recorded.Options with { Epochs = 5, LearningRate = 1e30 } };
        var e = Assert.Throws<NonFiniteValueException>(() => TrainingRun<float>.Create(wild, Checkpoint.Load<float>(ck), ck).Run());
        Assert.Equal(DivergenceRemedy.LowerLearningRateOrClip, e.Remedy);
        Assert.True(e.Epoch >= 3, $"epoch {e.Epoch}");
        Assert.NotNull(e.Step);
        Assert.Contains($"step {e.Step}", e.Detail);
        Assert.DoesNotContain("--", e.Message);
        Assert.Contains("lower the learning rate", e.Message);
        Assert.Equal(before, File.ReadAllBytes(ck));
    }

    [Fact]
    public void Cancelling_stops_between_steps_and_leaves_the_last_complete_checkpoint_to_resume_from()
    {
        string ck = _tmp.File("ck.safetensors");
        using var cancel = new CancellationTokenSource();
        // cancel in the middle of epoch 3
        var batches = new Recorder<BatchProgress>(b => { if (b.Epoch == 3 && b.Samples >= 48) cancel.Cancel(); });
        var run = TrainingRun<float>.Create(Job(epochs: 4), checkpointPath: ck);
        Assert.ThrowsAny<OperationCanceledException>(() => run.Run(batches, null, cancel.Token));
        Assert.Equal(48, batches.Reports[^1].Samples);
        var c = Checkpoint.Load<float>(ck);
        Assert.Equal(2, c.Epoch);

        var resumed = TrainingRun<float>.Create(Checkpoint.RecordedJob(ck)!, c, ck);
        resumed.Run();
        var whole = TrainingRun<float>.Create(Job(epochs: 4));
        whole.Run();
        TrainingAssert.BitIdentical(whole.Network, resumed.Network);
        Assert.Equal(4, Checkpoint.Load<float>(ck).Epoch);
    }

    [Fact]
    public void Collecting_diagnostics_reports_the_gradient_health_of_every_epoch()
    {
        var epochs = new Recorder<EpochReport>();
        var result = TrainingRun<float>.Create(Job(epochs: 3), collectDiagnostics: true).Run(null, epochs);
        Assert.Equal(3, result.Diagnostics.Count);
        Assert.Equal(result.Diagnostics, epochs.Reports.Select(r => r.Diagnostics!));
        Assert.All(result.Diagnostics, d => Assert.Equal(2, d.Length));   // one entry per layer of 4-16-3

        var plain = new Recorder<EpochReport>();
        Assert.Empty(TrainingRun<float>.Create(Job(epochs: 1)).Run(null, plain).Diagnostics);
        Assert.Null(plain.Reports.Single().Diagnostics);
    }

    [Fact]
    public void Invalid_settings_name_the_setting_not_a_flag()
    {
        var job = Job();
        var e = Assert.Throws<InvalidTrainingSettingException>(() => TrainingRun<float>.Create(job with { Options = job.Options with { BatchSize = 0 } }));
        Assert.Equal(TrainingSetting.BatchSize, e.Setting);
        Assert.Equal("0", e.Value);
        var layers = Assert.Throws<InvalidTrainingSettingException>(() => TrainingRun<float>.Create(job with { Layers = [5, 8, 3] }));
        Assert.Equal(TrainingSetting.Layers, layers.Setting);
        Assert.Contains("4 features", layers.Problem);
        var optimizer = Assert.Throws<InvalidTrainingSettingException>(() => TrainingRun<float>.Create(job with { Options = job.Options with { Optimizer = "lbfgs" } }));
        Assert.Equal(TrainingSetting.Optimizer, optimizer.Setting);
        foreach (var ex in new Exception[] { e, layers, optimizer }) Assert.DoesNotContain("--", ex.Message);
    }
}

/// <summary>What a resumed run takes from its checkpoint's recorded job, and what it refuses.</summary>
public sealed class TrainingJobContinueTests
{
    private static readonly TrainingJob Recorded = new()
    {
        Data = "a.csv", Layers = [4, 8, 3], Activation = "tanh",
        Options = new TrainOptions { Epochs = 5, Seed = 1, BatchSize = 16, LearningRate = 0.01, Schedule = "constant", Optimizer = "sgd", WeightDecay = 0 },
    };

    [Fact]
    public void Settings_not_given_come_from_the_checkpoint()
    {
        var given = new TrainingJob();   // every setting at its default, none given explicitly
        Assert.Equal(Recorded, Recorded.Continue(given, []));
        Assert.NotEqual(given, Recorded);
    }

    [Fact]
    public void A_setting_repeated_with_the_same_value_is_accepted()
    {
        var given = new TrainingJob { Activation = "tanh", Layers = [4, 8, 3], Options = new TrainOptions { Seed = 1, Optimizer = "sgd" } };
        var job = Recorded.Continue(given, [TrainingSetting.Activation, TrainingSetting.Layers, TrainingSetting.Seed, TrainingSetting.Optimizer]);
        Assert.Equal(Recorded, job);
    }

    [Theory]
    [InlineData(TrainingSetting.Seed, "1", "2")]
    [InlineData(TrainingSetting.Optimizer, "sgd", "adam")]
    [InlineData(TrainingSetting.Layers, "4,8,3", "4,16,3")]
    [InlineData(TrainingSetting.Activation, "tanh", "relu")]
    [InlineData(TrainingSetting.BatchSize, "16", "32")]
    public void A_contradicting_setting_is_refused_with_both_values(TrainingSetting setting, string recorded, string given)
    {
        var job = new TrainingJob
        {
            Layers = [4, 16, 3], Activation = "relu",
            Options = new TrainOptions { Seed = 2, Optimizer = "adam", BatchSize = 32 },
        };
        var e = Assert.Throws<CheckpointMismatchException>(() => Recorded.Continue(job, [setting]));
        Assert.Equal(setting, e.Setting);
        Assert.Equal(recorded, e.CheckpointValue);
        Assert.Equal(given, e.GivenValue);
        Assert.Equal(CheckpointMismatchReason.Fixed, e.Reason);
    }

    [Fact]
    public void An_initialisation_given_on_resume_is_accepted_and_the_recorded_one_kept()
    {
        foreach (var init in new[] { "he", "xavier_uniform", "default" })
        {
            var job = Recorded.Continue(new TrainingJob { Init = init }, [TrainingSetting.Init]);
            Assert.Equal("default", job.Init);
        }
        Assert.True(new TrainingJob { Init = "he" }.Agrees(TrainingSetting.Init, new TrainingJob { Init = "he_normal" }));
        Assert.True(new TrainingJob { Init = "auto" }.Agrees(TrainingSetting.Init, new TrainingJob { Init = "default" }));
        Assert.False(new TrainingJob { Init = "he" }.Agrees(TrainingSetting.Init, new TrainingJob { Init = "xavier" }));
    }

    [Fact]
    public void A_label_column_recorded_before_columns_were_resolved_agrees_with_any_and_a_resolved_one_with_itself()
    {
        var given = new TrainingJob { LabelColumn = "species" };
        // the run resolves the column; the data fingerprint tells whether the labels are the checkpoint's
        Assert.Null(Recorded.Continue(given, [TrainingSetting.LabelColumn]).LabelColumn);
        var resolved = Recorded with { LabelColumn = "label" };
        Assert.Equal(resolved, resolved.Continue(new TrainingJob { LabelColumn = "label" }, [TrainingSetting.LabelColumn]));
        var e = Assert.Throws<CheckpointMismatchException>(() => resolved.Continue(given, [TrainingSetting.LabelColumn]));
        Assert.Equal(("label", "species"), (e.CheckpointValue, e.GivenValue));
    }

    [Fact]
    public void The_rate_clipping_patience_and_data_path_may_change_and_epochs_unless_a_cosine_rate_spans_them()
    {
        var given = new TrainingJob { Data = "b.csv", Options = new TrainOptions { LearningRate = 0.001, ClipNorm = 1, Patience = 2, Epochs = 9 } };
        var job = Recorded.Continue(given, [TrainingSetting.LearningRate, TrainingSetting.ClipNorm, TrainingSetting.Patience, TrainingSetting.Epochs, TrainingSetting.Data]);
        Assert.Equal((0.001, 1.0, 2, 9, "b.csv"), (job.Options.LearningRate, job.Options.ClipNorm, job.Options.Patience, job.Options.Epochs, job.Data));
        Assert.Equal(Recorded.Options.Seed, job.Options.Seed);

        var cosine = Recorded with { Options = Recorded.Options with { Schedule = "cosine" } };
        var e = Assert.Throws<CheckpointMismatchException>(() => cosine.Continue(given, [TrainingSetting.Epochs]));
        Assert.Equal(CheckpointMismatchReason.CosineSpansEpochs, e.Reason);
        Assert.Equal("5", e.CheckpointValue);
    }
}

public sealed class TrainingJobTests
{
    [Fact]
    public void Jobs_are_equal_when_every_setting_is_with_layers_compared_by_value()
    {
        var a = new TrainingJob { Layers = [4, 8, 3] };
        Assert.Equal(a, a with { Layers = [4, 8, 3] });
        Assert.Equal(a.GetHashCode(), (a with { Layers = [4, 8, 3] }).GetHashCode());
        Assert.NotEqual(a, a with { Layers = [4, 9, 3] });
        Assert.NotEqual(a, a with { Options = a.Options with { Gamma = 0.5 } });
        foreach (var setting in Enum.GetValues<TrainingSetting>())
            Assert.False(string.IsNullOrEmpty(a.Format(setting)), $"{setting} has no text");
    }

    [Fact]
    public void With_takes_exactly_one_setting_from_another_job()
    {
        var a = new TrainingJob();
        var b = new TrainingJob
        {
            Data = "b.csv", LabelColumn = "y", Layers = [2, 2], Activation = "tanh", Init = "he_normal", Precision = "float64", Architecture = "2-2", Dropout = 0.1, Norm = "layernorm",
            Options = new TrainOptions
            {
                Optimizer = "sgd", LearningRate = 0.5, Momentum = 0.1, Nesterov = true, WeightDecay = 0.2, Schedule = "step", WarmupSteps = 3,
                StepSizeEpochs = 4, Gamma = 0.3, ClipNorm = 5, Patience = 6, Seed = 7, BatchSize = 8, Epochs = 9,
            },
            Task = "regression", Loss = "huber", HuberDelta = 2, ClassWeights = "1,2", PosWeight = "3",
        };
        foreach (var setting in Enum.GetValues<TrainingSetting>())
        {
            Assert.NotEqual(a.Format(setting), b.Format(setting));
            var c = a.With(setting, b);
            foreach (var other in Enum.GetValues<TrainingSetting>())
                Assert.Equal(other == setting ? b.Format(other) : a.Format(other), c.Format(other));
        }
    }
}
