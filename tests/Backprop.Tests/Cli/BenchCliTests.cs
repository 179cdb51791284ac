namespace Backprop.Tests.Cli;

/// <summary>The benchmark commands' JSON contracts (timings themselves belong to benchmarks, not tests).</summary>
public class BenchCliTests
{
    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    public void BenchTrainReportsRateStepTimeAndZeroAllocations(string optimizer)
    {
        var r = CliRunner.Run("bench", "train", "--layers", "20,16,3", "--batch", "8", "--steps", "50", "--threads", "1",
            "--optimizer", optimizer, "--json");
        Assert.Equal(0, r.ExitCode);
        var j = r.Json;
        double rate = j.GetProperty("samples_per_s").GetDouble(), stepUs = j.GetProperty("step_us").GetDouble();
        Assert.True(rate > 0 && stepUs > 0, r.LastLine);
        Assert.Equal(8 * 1e6 / stepUs, rate, rate * 0.02); // the two figures describe the same run (each rounded)
        Assert.Equal(0, j.GetProperty("allocated_bytes_per_step").GetDouble());
        // the fraction of peak is the step's FLOPs (2·batch·(3·Σ in·out − in₀·out₀)) per second over the measured peak
        double flops = 2.0 * 8 * (3 * (20 * 16 + 16 * 3) - 20 * 16);
        double gflops = j.GetProperty("gflops").GetDouble(), peak = j.GetProperty("peak_gflops").GetDouble();
        Assert.Equal(flops / stepUs / 1e3, gflops, gflops * 0.02 + 0.01);
        Assert.Equal(gflops / peak, j.GetProperty("fraction_of_peak").GetDouble(), 1e-3);
    }

    [Fact]
    public void BenchTrainWithoutUpdateSaysSoAndTimesNoOptimizer()
    {
        // --no-update: what the step costs were the optimizer's update free (forward and backward alone)
        var r = CliRunner.Run("bench", "train", "--layers", "20,16,3", "--batch", "8", "--steps", "20", "--threads", "1", "--no-update", "--profile");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.False(r.Json.GetProperty("update").GetBoolean());
        Assert.Contains("forward and backward only, no update", r.Stdout);
        Assert.DoesNotContain("optimizer step", r.Stdout);
        Assert.Contains("backward linear", r.Stdout);
        var with = CliRunner.Run("bench", "train", "--layers", "20,16,3", "--batch", "8", "--steps", "20", "--threads", "1", "--json");
        Assert.True(with.Json.GetProperty("update").GetBoolean());
    }

    [Fact]
    public void BenchPeakReportsBothPrecisions()
    {
        var r = CliRunner.Run("bench", "peak", "--threads", "1", "--json");
        Assert.Equal(0, r.ExitCode);
        double f32 = r.Json.GetProperty("float32_gflops").GetDouble(), f64 = r.Json.GetProperty("float64_gflops").GetDouble();
        Assert.True(f32 > 0 && f64 > 0, r.LastLine);
        Assert.Equal(1, r.Json.GetProperty("threads").GetInt32());
    }

    [Fact]
    public void BenchTrainProfileListsEveryOp()
    {
        var r = CliRunner.Run("bench", "train", "--layers", "6,5,2", "--batch", "4", "--steps", "20", "--threads", "1", "--profile");
        Assert.Equal(0, r.ExitCode);
        foreach (var op in new[] { "forward  linear+relu", "backward linear+relu", "backward linear ", "cross_entropy", "optimizer step" })
            Assert.Contains(op, r.Stdout);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void BenchGemmReportsGflopsForEachForm(bool transA, bool transB)
    {
        var args = new List<string> { "bench", "gemm", "--m", "24", "--n", "40", "--k", "16", "--threads", "1", "--json" };
        if (transA) args.Add("--trans-a");
        if (transB) args.Add("--trans-b");
        var r = CliRunner.Run([.. args]);
        Assert.Equal(0, r.ExitCode);
        Assert.True(r.Json.GetProperty("gflops").GetDouble() > 0, r.LastLine);
        Assert.Equal(r.Json.GetProperty("gflops").GetDouble() / r.Json.GetProperty("peak_gflops").GetDouble(),
            r.Json.GetProperty("fraction_of_peak").GetDouble(), 1e-3);
    }

    [Fact]
    public void BenchGemmRecordsTheCachesAndTheBlocksItRanWith()
    {
        var r = CliRunner.Run("bench", "gemm", "--m", "8", "--n", "8", "--k", "8", "--threads", "1", "--json");
        Assert.Equal(0, r.ExitCode);
        var caches = r.Json.GetProperty("caches");
        if (Backprop.Kernels.CpuCaches.ThisCpu is { } c)
        {
            Assert.Equal(c.L1dBytes, caches.GetProperty("l1d_bytes").GetInt64());
            Assert.Equal(c.L2Bytes, caches.GetProperty("l2_bytes").GetInt64());
            Assert.Equal(c.Source, caches.GetProperty("source").GetString());
        }
        else Assert.Equal(System.Text.Json.JsonValueKind.Null, caches.ValueKind);
        var blocks = r.Json.GetProperty("blocks");
        var tuning = Backprop.Kernels.KernelTuning.Default;
        Assert.Equal(tuning.KcBytes, blocks.GetProperty("kc_bytes").GetInt32());
        Assert.Equal(tuning.KcBytesFor<double>(), blocks.GetProperty("float64_kc_bytes").GetInt32());
        Assert.Equal(tuning.McBytes, blocks.GetProperty("mc_bytes").GetInt32());
        Assert.Equal(tuning.Nc, blocks.GetProperty("nc").GetInt32());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void BenchInferReportsRateAndTimePerCallOfTheSameRun(int batch)
    {
        var r = CliRunner.Run("bench", "infer", "--layers", "20,16,3", "--batch", batch.ToString(), "--threads", "1", "--json");
        Assert.Equal(0, r.ExitCode);
        double rate = r.Json.GetProperty("samples_per_s").GetDouble(), us = r.Json.GetProperty("run_us").GetDouble();
        Assert.True(rate > 0 && us > 0, r.LastLine);
        // both come from the same best repetition: they agree up to the JSON's rounding (run_us to 0.01 µs, which is
        // a few percent of a sub-microsecond call on this tiny network)
        Assert.Equal(batch * 1e6 / us, rate, rate * 0.006 / us + 0.1);
        Assert.Equal(0, r.Json.GetProperty("allocated_bytes_per_run").GetDouble());
        // FLOPs as `summary` counts them: 2·20·16 + 16 (bias) + 16 (relu) + 2·16·3 + 3 (bias) = 771 a sample
        var summary = CliRunner.Run("summary", "--layers", "20,16,3", "--json");
        long flops = r.Json.GetProperty("flops_per_sample").GetInt64();
        Assert.Equal(summary.Json.GetProperty("flops").GetInt64(), flops);
        Assert.Equal(771, flops);
        double gflops = r.Json.GetProperty("gflops").GetDouble(), peak = r.Json.GetProperty("peak_gflops").GetDouble();
        Assert.Equal(rate * flops / 1e9, gflops, 0.01 + rate * flops * 1e-12);
        Assert.True(peak > 0, r.LastLine);
        Assert.Equal(gflops / peak, r.Json.GetProperty("fraction_of_peak").GetDouble(), 1e-3);
    }

    [Theory]
    [InlineData("train", "--batch", "0")]
    [InlineData("train", "--optimizer", "lbfgs")]
    [InlineData("gemm", "--m", "0")]
    [InlineData("gemm", "--packed-b", "true")]
    [InlineData("infer", "--batch", "0")]
    [InlineData("infer", "--model", "no-such-model.safetensors")]
    public void BadBenchOptionsExitTwoWithOneLine(string sub, string option, string value)
    {
        var r = CliRunner.Run("bench", sub, option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.TrimEnd().Split('\n'));
    }
}
