using System.Buffers.Binary;
using System.Text.Json;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Diagnostics;

public class DiagnoseCliTests
{
    [Fact]
    public void DiagnosePlotsTheOutputGradientDistributionFromTheLoggedSeries()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"backprop-diag-{Guid.NewGuid():N}");
        try
        {
            var r = CliRunner.Run("diagnose", CliRunner.DataPath("problems", "seed-sigmoid-small-weights-vanishing.json"), "--plots", dir, "--json");
            Assert.Equal(0, r.ExitCode);
            Assert.True(r.Json.GetProperty("vanishing").GetBoolean());
            var png = File.ReadAllBytes(Path.Combine(dir, "output-gradients.png"));
            Assert.Equal(Backprop.Cli.Commands.DiagnosePlots.Width, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16, 4)));
            Assert.Equal(Backprop.Cli.Commands.DiagnosePlots.Height, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20, 4)));
            var series = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "output-gradients.json"))).RootElement.EnumerateArray().ToArray();
            Assert.Equal(9, series.Length);
            var layerNorms = r.Json.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("output_gradient_norm").GetDouble()).ToArray();
            double previousMode = double.NegativeInfinity;
            for (int l = 0; l < series.Length; l++)
            {
                var x = series[l].GetProperty("log10_magnitude").EnumerateArray().Select(v => v.GetDouble()).ToArray();
                var f = series[l].GetProperty("fraction").EnumerateArray().Select(v => v.GetDouble()).ToArray();
                Assert.Equal(1.0, f.Sum(), 6);
                // the distribution sits where the logged norm says: within a decade and a half of log10 ‖∂L/∂h‖
                double mean = x.Zip(f, (a, b) => a * b).Sum();
                Assert.InRange(mean, Math.Log10(layerNorms[l]) - 1.5, Math.Log10(layerNorms[l]) + 0.5);
                Assert.True(mean > previousMode, "gradients shrink layer by layer towards the input");
                previousMode = mean;
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void DiagnoseATrainedModelOnData()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"backprop-diagm-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var model = Path.Combine(dir, "m.safetensors");
            Assert.Equal(0, CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "wine.csv"), "--epochs", "5", "--out", model, "--quiet").ExitCode);
            var r = CliRunner.Run("diagnose", "--model", model, "--data", CliRunner.DataPath("tabular", "wine.csv"), "--json");
            Assert.Equal(0, r.ExitCode);
            Assert.Equal(2, r.Json.GetProperty("layers").GetArrayLength());
            Assert.Contains("healthy", r.Json.GetProperty("verdict").GetString());
            Assert.Equal(2, CliRunner.Run("diagnose", "--model", model).ExitCode);
            Assert.Equal(2, CliRunner.Run("diagnose").ExitCode);
        }
        finally { Directory.Delete(dir, true); }
    }
}
