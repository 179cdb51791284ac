using System.Buffers.Binary;
using System.Text.Json;
using Backprop.Data;
using Backprop.Health;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Diagnostics;

public class TrainingDiagnosticsTests
{
    private static LayerHealth[] MeasureOneBatch(Sequential<float> net, LabeledData data, int batch)
    {
        var step = new TrainingStep<float>(net, batch);
        step.Load(data.Features.AsSpan(0, batch * data.FeatureCount), data.Labels.AsSpan(0, batch));
        step.ForwardBackward();
        return Backprop.Training.Diagnostics.Measure(step, 0.001);
    }

    [Fact]
    public void ADeepSmallWeightSigmoidNetIsDiagnosedAsVanishing()
    {
        var rng = new Random(0);
        var sizes = new[] { 20, 16, 16, 16, 16, 16, 16, 16, 16, 3 };
        var layers = new List<DenseLayer<float>>();
        for (int i = 0; i + 1 < sizes.Length; i++)
        {
            var w = Tensor<float>.Random(rng, -0.1, 0.1, sizes[i + 1], sizes[i]);
            layers.Add(new DenseLayer<float>(w, new Tensor<float>(sizes[i + 1]), Activations.Create<float>(i + 2 == sizes.Length ? "identity" : "sigmoid")));
        }
        var net = new Sequential<float>(layers);
        var x = Enumerable.Range(0, 32 * 20).Select(_ => (float)rng.NextDouble()).ToArray();
        var y = Enumerable.Range(0, 32).Select(i => i % 3).ToArray();
        var health = MeasureOneBatch(net, new LabeledData(x, y, 20), 32);
        Assert.True(health[^1].WeightGradientNorm > 100 * health[0].WeightGradientNorm);
        Assert.Contains("vanishing", Backprop.Training.Diagnostics.Verdict(health));
    }

    [Fact]
    public void AHeInitialisedReluNetOnMnistIsHealthy()
    {
        var mnist = MnistDataset.Load(CliRunner.DataPath("mnist"));
        var net = Initializers.Mlp<float>([784, 128, 64, 10], "relu", 0);
        var health = MeasureOneBatch(net, mnist.Test, 256);
        string verdict = Backprop.Training.Diagnostics.Verdict(health);
        Assert.StartsWith("healthy", verdict);
        Assert.All(health, h => Assert.True((h.DeadFraction ?? 0) < 0.5 && h.WeightGradientNorm > 0));
    }

    /// <summary>Training diagnostics and diagnose judge the same measurements (one LayerHealth) with one verdict; training adds only the update ratio.</summary>
    [Fact]
    public void TrainingAndDiagnoseGiveOneVerdict()
    {
        LayerHealth H(int layer, string act, double g, double update = 0.001, double? dead = null, double? sat = null) =>
            new(layer, act, g, 1.0, g, dead, sat) { UpdateRatio = update };
        // vanishing through sigmoids
        var train = new[] { H(1, "sigmoid", 1e-6, sat: 0), H(2, "sigmoid", 1e-3, sat: 0), H(3, "identity", 1.0) };
        Assert.Equal(GradientHealth.Judge(train).Verdict, Backprop.Training.Diagnostics.Verdict(train));
        Assert.Contains("vanishing gradients", Backprop.Training.Diagnostics.Verdict(train));
        // dead ReLUs, worded as diagnose words them
        var deadTrain = new[] { H(1, "relu", 0.5, dead: 0.75), H(2, "identity", 0.6) };
        Assert.Equal(GradientHealth.Judge(deadTrain).Verdict, Backprop.Training.Diagnostics.Verdict(deadTrain));
        Assert.Contains("75% of layer-1 ReLU units are dead", Backprop.Training.Diagnostics.Verdict(deadTrain));
        // only training sees the update ratio
        string tooFast = Backprop.Training.Diagnostics.Verdict([H(1, "relu", 0.5, update: 0.4, dead: 0), H(2, "identity", 0.6)]);
        Assert.Contains("layer-1 updates are 4.0e-1 of its weights", tooFast);
        Assert.Contains("consider a lower learning rate", tooFast);
        // no gradient at all reaching layer 1
        Assert.Contains("layer 1 receives no gradient at all", Backprop.Training.Diagnostics.Verdict([H(1, "relu", 0), H(2, "identity", 0.6)]));
        Assert.StartsWith("healthy", Backprop.Training.Diagnostics.Verdict([H(1, "relu", 0.5), H(2, "identity", 0.6)]));
    }

    [Fact]
    public void DeadAndSaturatedFractionsCountUnits()
    {
        // relu: unit 0 never positive (dead), unit 1 positive once
        var z = Tensor<float>.FromRows([[-1.0, 2.0], [-0.5, -3.0]]);
        Assert.Equal(0.5, Backprop.Training.Diagnostics.UnitHealth("relu", z, z).dead);
        // sigmoid: σ′ = y(1 − y) < 0.0025 for y = 0.999 and y = 0.0001, not for y = 0.5
        var h = Tensor<float>.FromRows([[0.999, 0.5], [0.0001, 0.5]]);
        Assert.Equal(0.5, Backprop.Training.Diagnostics.UnitHealth("sigmoid", h, h).saturated, 6);
    }

    [Fact]
    public void PlotsArePngsOfTheRequestedSizeDrawnFromTheLoggedSeries()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"backprop-plots-{Guid.NewGuid():N}");
        var model = Path.Combine(dir, "m.safetensors");
        try
        {
            var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "4", "--lr", "0.01",
                "--plots", dir, "--out", model, "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            foreach (var name in new[] { "loss.png", "accuracy.png", "gradient-norms.png" })
            {
                var bytes = File.ReadAllBytes(Path.Combine(dir, name));
                Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
                Assert.Equal(Backprop.Cli.Commands.TrainingPlots.Width, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16, 4)));
                Assert.Equal(Backprop.Cli.Commands.TrainingPlots.Height, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20, 4)));
            }
            var log = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "history.json"))).RootElement;
            var epochs = log.GetProperty("epochs").EnumerateArray().ToArray();
            Assert.Equal(4, epochs.Length);
            Assert.Equal(4, log.GetProperty("diagnostics").GetArrayLength());
            // The stdout table and the log hold the same per-epoch training loss.
            foreach (var e in epochs)
            {
                string row = $"{e.GetProperty("epoch").GetInt32(),5} {e.GetProperty("train_loss").GetDouble(),11:F4}";
                Assert.Contains(row, r.Stdout);
            }
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
