using Backprop.Data;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Tests.Data;
using Backprop.Training;

namespace Backprop.Tests.Nn;

/// <summary>
/// A layer kind defined only in the test project (<see cref="ScaleLayer{T}"/>, h = f(x ⊙ s)) trains through the
/// library's trainer, saves and loads through the model file, and is measured by diagnostics, with no library edit.
/// </summary>
public sealed class ScaleLayerTests
{
    /// <summary>Three Gaussian blobs in 4-D: separable, so a few epochs learn them.</summary>
    private static LabeledData Blobs(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n * 4];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % 3;
            for (int j = 0; j < 4; j++) x[i * 4 + j] = (float)((j == y[i] ? 2.0 : 0.0) + 0.5 * Initializers.Normal(rng));
        }
        return new LabeledData(x, y, 4);
    }

    private static Sequential<T> Net<T>(int seed) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var catalog = TestKinds.Catalog;
        var rng = new Random(seed);
        var layers = new ILayer<T>[]
        {
            catalog.Layers.Find(DenseKind.KindName)!.Create(new LayerShape(4, 6, Bias: true), catalog.Activations.Create<T>("tanh")),
            catalog.Layers.Find(ScaleKind.KindName)!.Create(new LayerShape(6, 6, Bias: false), catalog.Activations.Create<T>(TestKinds.Softsign)),
            catalog.Layers.Find(DenseKind.KindName)!.Create(new LayerShape(6, 3, Bias: true), catalog.Activations.Create<T>("identity")),
        };
        foreach (var l in layers) Initializers.Initialize(l, InitKind.Default, rng);
        return new Sequential<T>(layers);
    }

    [Fact]
    public void InitialisesByRole_TrainsAndItsParameterLearns()
    {
        var net = Net<float>(3);
        var scale = net.Layers[1].Parameter("scale")!;
        Assert.All(scale.Value.Data.ToArray(), v => Assert.Equal(1f, v));              // role Scale starts at one
        Assert.All(net.Layers[0].Parameter("bias")!.Value.Data.ToArray(), v => Assert.Equal(0f, v));
        Assert.Contains(net.Layers[0].Parameter("weight")!.Value.Data.ToArray(), v => v != 0);

        var data = Blobs(300, 1);
        var trainer = new Trainer<float>(net, new TrainOptions { BatchSize = 30, LearningRate = 0.05, Epochs = 15 });
        Assert.Contains(scale, trainer.Parameters);                             // the optimizer updates it
        var loader = new BatchLoader(data, 30, 0);
        var schedule = trainer.Schedule(loader.BatchesPerEpoch);
        double first = trainer.TrainEpoch(loader, 1, schedule).loss, last = first;
        for (int e = 2; e <= 15; e++) last = trainer.TrainEpoch(loader, e, schedule).loss;
        Assert.True(last < 0.5 * first, $"loss {first} → {last}");
        Assert.True(trainer.Evaluate(Blobs(150, 2)).accuracy > 0.9);
        Assert.Contains(scale.Value.Data.ToArray(), v => Math.Abs(v - 1f) > 1e-3);      // and it learned

        // diagnostics read every layer through the interface: the scale layer has no weight, its softsign saturation is measured
        var step = trainer.StepFor(30);
        step.Load(data.Features.AsSpan(0, 30 * 4), data.Labels.AsSpan(0, 30));
        step.ForwardBackward();
        var health = Backprop.Training.Diagnostics.Measure(step, 0.05);
        Assert.Equal([1, 2, 3], health.Select(h => h.Layer));
        Assert.Equal(0, health[1].WeightNorm);
        Assert.Equal([DenseKind.KindName, ScaleKind.KindName, DenseKind.KindName], health.Select(h => h.Kind));   // rows name the layer's kind
        Assert.Equal([true, false, true], health.Select(h => h.HasWeight));                                        // so the verdict's ratio leaves the scale layer out
        Assert.NotNull(health[1].ScaleNorm);                                                                          // and reports its scale instead
        Assert.Equal(TestKinds.Softsign, health[1].Activation);
        Assert.NotNull(health[1].SaturatedFraction);   // softsign declares a maximum derivative: its saturation is measured
        Assert.Null(health[1].DeadFraction);           // and its units cannot die
        Assert.NotNull(health[0].SaturatedFraction);   // tanh saturates
        Assert.Null(health[0].DeadFraction);
        Assert.NotEmpty(Backprop.Training.Diagnostics.Verdict(health));
    }

    [Fact]
    public void SavesAndLoadsThroughTheModelFile()
    {
        using var tmp = new TempDir();
        var net = Net<double>(5);
        var s = net.Layers[1].Parameter("scale")!.Value.Data;
        for (int i = 0; i < s.Length; i++) s[i] = 0.5 + 0.1 * i;
        var shift = net.Layers[1].Buffers.Single(b => b.Name == "shift").Value.Data;
        for (int i = 0; i < shift.Length; i++) shift[i] = 0.05 * i - 0.1;
        string path = tmp.File("scale.safetensors");
        ModelFile.Save(path, net);

        var file = SafeTensorsFile.Read(path);
        Assert.Contains("layers.1.scale", file.Names);
        Assert.Contains("layers.1.shift", file.Names);                        // a buffer travels with the parameters
        Assert.DoesNotContain("layers.1.weight", file.Names);
        var arch = ModelFile.ArchitectureOf(net);
        Assert.Equal([DenseKind.KindName, ScaleKind.KindName, DenseKind.KindName], arch.Kinds!);

        var loaded = ModelFile.Load<double>(path, TestKinds.Catalog).Network;
        Assert.IsType<ScaleLayer<double>>(loaded.Layers[1]);
        Assert.Equal(s, loaded.Layers[1].Parameter("scale")!.Value.Data);
        Assert.Equal(shift, loaded.Layers[1].Buffers.Single(b => b.Name == "shift").Value.Data);
        var x = Tensor<double>.Random(new Random(9), -2, 2, 7, 4);
        Assert.Equal(net.Predict(x).Data, loaded.Predict(x).Data);
        Assert.Equal(net.Cast<float>().Predict(x.Cast<float>()).Data, ModelFile.Load<float>(path, TestKinds.Catalog).Network.Predict(x.Cast<float>()).Data);

        // a loader without the kind says which kind it does not know
        var e = Assert.Throws<DataFormatException>(() => ModelFile.Load<double>(path));
        Assert.Contains($"unknown layer kind '{ScaleKind.KindName}'", e.Message);
        // a dense network's architecture has no kinds: its files are as they always were
        Assert.Null(ModelFile.ArchitectureOf(Initializers.Mlp<float>([4, 5, 3], "relu", 0)).Kinds);
    }
}
