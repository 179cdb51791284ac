using Backprop.Training;

namespace Backprop.Tests.Training;

public class LrScheduleTests
{
    [Fact]
    public void The_one_list_of_schedules_is_what_jobs_and_the_cli_accept_and_each_has_its_own_course()
    {
        using var tmp = new TempDir();
        Assert.Equal(["constant", "step", "cosine"], LrSchedule.Kinds.ToArray());
        foreach (var kind in LrSchedule.Kinds)
        {
            new TrainingJob { Options = new TrainOptions { Schedule = kind } }.Validate();
            var s = new LrSchedule(kind, 1.0, TotalSteps: 100, StepSize: 10, Gamma: 0.5);
            // no kind but constant falls through to the base rate
            Assert.Equal(kind == "constant", Enumerable.Range(0, 100).All(step => s.At(step) == 1.0));
            var r = Backprop.Tests.Cli.CliRunner.Run("train", "--data", Backprop.Tests.Cli.CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "1",
                "--schedule", kind, "--out", tmp.File(kind + ".safetensors"), "--quiet");
            Assert.True(r.ExitCode == 0, $"--schedule {kind}: {r.Stderr}");
        }
        var e = Assert.Throws<InvalidTrainingSettingException>(() => new TrainingJob { Options = new TrainOptions { Schedule = "linear" } }.Validate());
        Assert.Equal(TrainingSetting.Schedule, e.Setting);
        Assert.Equal("expected constant, step or cosine", e.Problem);
        TrainingAssert.UsageError(Backprop.Tests.Cli.CliRunner.Run("train", "--schedule", "linear"), "linear");
    }

    [Fact]
    public void Constant_is_the_base_rate_at_every_step()
    {
        var s = new LrSchedule("constant", 0.05, TotalSteps: 100);
        foreach (long step in new long[] { 0, 1, 50, 99, 100, 1000 }) Assert.Equal(0.05, s.At(step));
    }

    [Fact]
    public void Step_multiplies_by_gamma_at_each_boundary()
    {
        var s = new LrSchedule("step", 1.0, TotalSteps: 100, StepSize: 10, Gamma: 0.5);
        Assert.Equal(1.0, s.At(0));
        Assert.Equal(1.0, s.At(9));
        Assert.Equal(0.5, s.At(10));
        Assert.Equal(0.5, s.At(19));
        Assert.Equal(0.25, s.At(20));
        Assert.Equal(0.125, s.At(35));
        Assert.Equal(Math.Pow(0.5, 9), s.At(99), 15);
    }

    [Fact]
    public void Cosine_starts_at_base_is_half_at_the_midpoint_and_ends_at_zero()
    {
        var s = new LrSchedule("cosine", 0.2, TotalSteps: 100);
        Assert.Equal(0.2, s.At(0), 15);
        Assert.Equal(0.1, s.At(50), 15);
        Assert.Equal(0.0, s.At(100), 15);
        Assert.Equal(0.0, s.At(250), 15); // past the end it stays at 0
        Assert.Equal(0.2 * 0.5 * (1 + Math.Cos(Math.PI * 0.25)), s.At(25), 15);
        for (long t = 1; t <= 100; t++) Assert.True(s.At(t) <= s.At(t - 1), $"cosine rises at step {t}");
    }

    [Fact]
    public void Warmup_ramps_linearly_to_the_base_rate_then_the_schedule_starts()
    {
        var s = new LrSchedule("cosine", 0.1, TotalSteps: 110, WarmupSteps: 10);
        for (long t = 0; t < 10; t++) Assert.Equal(0.1 * (t + 1) / 10, s.At(t), 15);
        // after warm-up, cosine over the remaining 100 steps
        Assert.Equal(0.1, s.At(10), 15);
        Assert.Equal(0.05, s.At(60), 15);
        Assert.Equal(0.0, s.At(110), 15);

        var c = new LrSchedule("constant", 0.3, TotalSteps: 50, WarmupSteps: 4);
        Assert.Equal(new[] { 0.075, 0.15, 0.225, 0.3, 0.3, 0.3 }, Enumerable.Range(0, 6).Select(t => Math.Round(c.At(t), 12)));
    }

    [Fact]
    public void Trainer_schedule_decays_per_epoch_for_step()
    {
        var net = Initializers.Mlp<double>([4, 3], "relu", seed: 1);
        var trainer = new Trainer<double>(net, new TrainOptions { Schedule = "step", LearningRate = 0.1, Gamma = 0.5, Epochs = 5 });
        var s = trainer.Schedule(batchesPerEpoch: 7);
        Assert.Equal(35, s.TotalSteps);
        Assert.Equal(0.1, s.At(6));
        Assert.Equal(0.05, s.At(7));
        Assert.Equal(0.025, s.At(14));
    }
}

public class GradientClippingTests
{
    private static Var<double>[] WithGrads(params double[][] grads)
    {
        var ps = grads.Select(g => Var<double>.Parameter(new Tensor<double>(g.Length))).ToArray();
        for (int i = 0; i < ps.Length; i++) grads[i].CopyTo(ps[i].Grad.Data);
        return ps;
    }

    private static double GlobalNorm(IEnumerable<Var<double>> ps) => Math.Sqrt(ps.Sum(p => p.Grad.Data.ToArray().Sum(x => x * x)));

    [Fact]
    public void Returns_the_pre_clip_norm_and_scales_to_max_norm()
    {
        // norms 5 (3,4) and 12 (…): global norm 13
        var ps = WithGrads([3, 4], [12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        double norm = GradientClipping.ClipGlobalNorm(ps, 1.3);
        Assert.Equal(13.0, norm, 12);
        Assert.Equal(1.3, GlobalNorm(ps), 6); // torch's rule: scale max/(norm + 1e-6)
        // the direction is kept: every gradient scaled by the same factor
        Assert.Equal(3.0 / 12.0, ps[0].Grad.Data[0] / ps[1].Grad.Data[0], 12);
        Assert.Equal(4.0 / 3.0, ps[0].Grad.Data[1] / ps[0].Grad.Data[0], 12);
        // torch.nn.utils.clip_grad_norm_ scale: max_norm / (total_norm + 1e-6)
        Assert.Equal(3 * 1.3 / (13 + 1e-6), ps[0].Grad.Data[0], 15);
    }

    [Fact]
    public void Leaves_small_gradients_alone()
    {
        var ps = WithGrads([0.3, -0.4]);
        Assert.Equal(0.5, GradientClipping.ClipGlobalNorm(ps, 1.0), 12);
        Assert.Equal(new[] { 0.3, -0.4 }, ps[0].Grad.Data);
    }

    [Fact]
    public void Max_norm_zero_only_measures()
    {
        var ps = WithGrads([30, 40]);
        Assert.Equal(50.0, GradientClipping.ClipGlobalNorm(ps, 0), 12);
        Assert.Equal(new[] { 30.0, 40.0 }, ps[0].Grad.Data);
    }

    [Fact]
    public void Float32_long_gradients_are_clipped_too()
    {
        var p = Var<float>.Parameter(new Tensor<float>(1000));
        for (int i = 0; i < 1000; i++) p.Grad.Data[i] = (i % 7) - 3;
        double before = Math.Sqrt(p.Grad.Data.ToArray().Sum(x => (double)x * x));
        Assert.Equal(before, GradientClipping.ClipGlobalNorm([p], 2.0), 3);
        Assert.Equal(2.0, Math.Sqrt(p.Grad.Data.ToArray().Sum(x => (double)x * x)), 4);
    }
}
