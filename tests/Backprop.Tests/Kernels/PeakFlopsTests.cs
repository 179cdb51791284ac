using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Tests.Kernels;

/// <summary>The peak loop computes what it says on every width (timings themselves belong to benchmarks).</summary>
public class PeakFlopsTests
{
    public static IEnumerable<object[]> Widths() =>
        from w in new[] { nameof(PeakWidth.Vector512), nameof(PeakWidth.Vector256), nameof(PeakWidth.Portable) }
        from f64 in new[] { false, true }
        select new object[] { w, f64 };

    [Theory]
    [MemberData(nameof(Widths))]
    public void EveryLaneOfEveryChainFollowsTheScalarRecurrence(string widthName, bool float64)
    {
        var width = Enum.Parse<PeakWidth>(widthName);
        if (!PeakFlops.IsSupported(width)) return;   // this CPU cannot run the width: nothing to check here
        foreach (long n in new long[] { 0, 1, 5, 1000 })
        {
            int lanes = float64 ? PeakFlops.Lanes<double>(width) : PeakFlops.Lanes<float>(width);
            double sum = float64 ? PeakFlops.Run<double>(width, n) : PeakFlops.Run<float>(width, n);
            double expected = PeakFlops.Reference(n, float64) * PeakFlops.Accumulators * lanes;
            Assert.Equal(expected, sum, Math.Abs(expected) * (float64 ? 1e-12 : 1e-5));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void MeasurementCountsTwoFlopsPerLanePerFma(int threads)
    {
        var r = PeakFlops.Measure(false, threads, PeakWidth.Portable, reps: 1, repSeconds: 0.005);
        Assert.Equal(threads, r.Threads);
        Assert.Equal(System.Numerics.Vector<float>.Count, r.Lanes);
        Assert.True(r.Gflops > 0 && double.IsFinite(r.Gflops));
        Assert.Equal(r.Gflops / threads, r.GflopsPerThread, 1e-9);
    }

    [Fact]
    public void TrainingStepFlopsFollowTheIssueFormula()
    {
        var net = Initializers.Mlp<float>([784, 512, 512, 10], "relu", 0, InitKind.HeUniform);
        double sum = 784.0 * 512 + 512.0 * 512 + 512.0 * 10;
        Assert.Equal(2.0 * 128 * (3 * sum - 784.0 * 512), TrainBenchmark.StepFlops(net, 128));
    }
}
