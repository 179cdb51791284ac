using Backprop.Interop;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Tests.Data;
using Backprop.Training;
using Xunit.Abstractions;
using static Backprop.Tests.Interop.InteropTestData;

namespace Backprop.Tests.Interop;

public sealed class TorchImportTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void ImportedTorchModelReproducesPyTorchOutputs(int k)
    {
        using var tmp = new TempDir();
        var (acts, expected) = TorchReference(k);
        Assert.Equal("identity", acts[^1]);
        string model = tmp.File("model.safetensors");
        var imp = CliRunner.Run("import", "--from", CliRunner.DataPath("torch-models", $"mlp-{k}.safetensors"),
            "--activations", string.Join(",", acts[..^1]), "--out", model);
        Assert.True(imp.ExitCode == 0, imp.Stderr);

        var pred = CliRunner.Run("predict", "--model", model, "--data", CliRunner.DataPath("mnist"), "--limit", "64", "--json");
        Assert.True(pred.ExitCode == 0, pred.Stderr);
        var rows = pred.Json.GetProperty("outputs").EnumerateArray().Select(r => r.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray()).ToArray();
        Assert.Equal(64, rows.Length);
        Assert.Equal(expected.Length, rows.Length);
        double max = MaxAbsDiff(rows.SelectMany(r => r).ToArray(), expected.SelectMany(r => r).ToArray());
        output.WriteLine($"mlp-{k}: max |backprop − pytorch| = {max:E3}");
        Assert.True(max <= 1e-4, $"mlp-{k}: max abs difference {max}");

        // The model carries the architecture and the label names 0..C−1.
        var m = ModelFile.Load<float>(model);
        Assert.Equal(acts, m.Network.Layers.Select(l => l.Activation.Name).ToArray());
        Assert.Equal(Enumerable.Range(0, m.Network.Outputs).Select(i => i.ToString()), m.LabelNames);
    }

    public static TheoryData<int[], int[], bool[], string> Architectures => new()
    {
        // sizes, PyTorch module indices, bias per layer, hidden activations
        { [5, 3], [0], [true], "" },
        { [5, 3], [0], [false], "" },
        { [4, 6, 3], [0, 2], [true, false], "relu" },
        { [7, 8, 5, 2], [0, 2, 4], [false, true, true], "sigmoid,tanh" },
        { [6, 9, 7, 5, 4], [0, 2, 4, 6], [true, true, false, true], "leaky_relu,elu,softplus" },
        { [3, 10, 10, 4], [1, 3, 6], [true, true, true], "gelu,silu" },            // Flatten at 0, Dropout after the 2nd activation
        { [8, 6, 6, 6, 3], [0, 2, 4, 6], [true, true, true, true], "softmax" },     // one activation for every hidden layer
        { [5, 4, 4, 2], [0, 1, 3], [true, false, true], "identity,relu" },         // two adjacent Linear modules
        { [6, 12, 3], [0, 10], [true, true], "tanh" },                             // two-digit module index (numeric, not string, order)
    };

    [Theory]
    [MemberData(nameof(Architectures))]
    public void ImportOfSyntheticStateDictMatchesDirectForwardPass(int[] sizes, int[] modules, bool[] bias, string activations)
    {
        using var tmp = new TempDir();
        var rng = new Random(sizes.Sum() * 31 + modules.Sum());
        var layers = RandomLinears(rng, sizes, modules, bias);
        string sd = tmp.File("state.safetensors");
        // Written in shuffled key order: the importer must sort modules numerically itself.
        SafeTensorsFile.Write(sd, StateDict(layers).OrderBy(_ => rng.Next()).Select(t => SafeTensorEntry.Float32(t.Name, t.Data, t.Shape)));
        string model = tmp.File("model.safetensors");
        var args = new List<string> { "import", "--from", sd, "--out", model, "--json" };
        if (activations.Length > 0) args.AddRange(["--activations", activations]);
        var r = CliRunner.Run([.. args]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(modules, r.Json.GetProperty("modules").EnumerateArray().Select(e => e.GetInt32()).ToArray());

        var hidden = activations.Length == 0 ? [] : activations.Split(',');
        if (hidden.Length == 1 && sizes.Length > 3) hidden = Enumerable.Repeat(hidden[0], sizes.Length - 2).ToArray();
        var direct = Network(layers, hidden);
        var imported = ModelFile.Load<float>(model).Network;
        Assert.Equal(bias, imported.Layers.Select(l => l.Parameter("bias") is not null).ToArray());
        Assert.Equal([.. hidden, "identity"], imported.Layers.Select(l => l.Activation.Name).ToArray());
        var x = RandomInput(rng, 9, sizes[0]);
        Assert.Equal(direct.Predict(x).Data, imported.Predict(x).Data);
    }

    [Fact]
    public void ImportedSyntheticMnistModelPredictsLikeDirectForwardPass()
    {
        using var tmp = new TempDir();
        var rng = new Random(784);
        var layers = RandomLinears(rng, [784, 20, 10], [0, 2], [true, false], scale: 3);
        string sd = tmp.File("state.safetensors");
        SafeTensorsFile.Write(sd, StateDict(layers).Select(t => SafeTensorEntry.Float32(t.Name, t.Data, t.Shape)));
        string model = tmp.File("model.safetensors");
        Assert.Equal(0, CliRunner.Run("import", "--from", sd, "--activations", "silu", "--out", model).ExitCode);
        var pred = CliRunner.Run("predict", "--model", model, "--data", CliRunner.DataPath("mnist"), "--limit", "64", "--json");
        Assert.True(pred.ExitCode == 0, pred.Stderr);
        var got = pred.Json.GetProperty("outputs").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => (float)v.GetDouble())).ToArray();
        var want = Network(layers, ["silu"]).Predict(MnistFirst64()).Data;
        Assert.True(MaxAbsDiff(got, want) <= 1e-6, $"max abs difference {MaxAbsDiff(got, want)}");
    }

    [Theory]
    [InlineData("F16")]
    [InlineData("BF16")]
    [InlineData("F32")]
    public void ImportsHalfPrecisionStateDicts(string dtype)
    {
        using var tmp = new TempDir();
        var rng = new Random(dtype.Length);
        var layers = RandomLinears(rng, [6, 8, 5, 3], [0, 2, 4], [true, false, true]);
        string sd = tmp.File($"state-{dtype}.safetensors");
        WriteRaw(sd, dtype, StateDict(layers)); // rounds the layers' values to the dtype
        Assert.All(SafeTensorsFile.Read(sd).Tensors, t => Assert.Equal(dtype, t.DType));
        string model = tmp.File("model.safetensors");
        var r = CliRunner.Run("import", "--from", sd, "--activations", "tanh,gelu", "--out", model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var x = RandomInput(rng, 5, 6);
        var direct = Network(layers, ["tanh", "gelu"]);
        Assert.Equal(direct.Predict(x).Data, ModelFile.Load<float>(model).Network.Predict(x).Data);
    }

    [Fact]
    public void Float64OptionKeepsDoublePrecision()
    {
        using var tmp = new TempDir();
        string sd = tmp.File("state.safetensors");
        var w = new[] { 0.1, 0.2, 1.0 / 3, -0.7 };
        SafeTensorsFile.Write(sd, [SafeTensorEntry.Float64("0.weight", w, 2, 2)]);
        string model = tmp.File("model.safetensors");
        Assert.Equal(0, CliRunner.Run("import", "--from", sd, "--out", model, "--dtype", "float64").ExitCode);
        var f = SafeTensorsFile.Read(model);
        Assert.Equal("F64", f.GetInfo("layers.0.weight").DType);
        Assert.Equal(w, f.GetDoubles("layers.0.weight"));
    }

    public static TheoryData<string, string?, string[]> BadStateDicts => new()
    {
        // case, activations, words the one-line error must contain
        { "unknown-key", "relu", ["0.running_mean", "not a Linear parameter"] },
        { "prefixed-key", "relu", ["fc.weight"] },
        { "bias-without-weight", "relu", ["3.bias", "no matching"] },
        { "chain-mismatch", "relu", ["2.weight", "takes 5 inputs", "0.weight gives 4 outputs"] },
        { "bias-shape", "relu", ["0.bias", "expected [4]"] },
        { "weight-rank", "relu", ["0.weight", "2-D"] },
        { "int-dtype", "relu", ["0.weight", "I32"] },
        { "nan", "relu", ["2.weight", "NaN", "finite"] },
        { "empty", "relu", ["no tensors"] },
        { "ok", "relu,tanh", ["--activations", "has 2 entries", "2 Linear layers", "1 hidden activation"] },
        { "ok", "swish", ["swish", "not an activation"] },
        { "ok", null, ["--activations", "must name 1"] },
        { "ok", "relu,", ["entry 2"] },
        { "ok3", "relu,tanh,relu", ["3 entries", "2 hidden activations are needed"] },
        { "adjacent", "relu", ["modules 0 and 1 are adjacent", "identity"] },
    };

    [Theory]
    [MemberData(nameof(BadStateDicts))]
    public void BadInputIsOneLineErrorExit2(string kind, string? activations, string[] words)
    {
        using var tmp = new TempDir();
        string sd = tmp.File($"{kind}.safetensors");
        float[] F(int n) => Enumerable.Range(0, n).Select(i => i * 0.1f).ToArray();
        SafeTensorEntry E(string name, params int[] shape) => SafeTensorEntry.Float32(name, F(shape.Aggregate(1, (a, b) => a * b)), shape);
        switch (kind)
        {
            case "unknown-key": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), E("0.running_mean", 4), E("2.weight", 2, 4)]); break;
            case "prefixed-key": SafeTensorsFile.Write(sd, [E("fc.weight", 4, 3)]); break;
            case "bias-without-weight": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), E("2.weight", 2, 4), E("3.bias", 2)]); break;
            case "chain-mismatch": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), E("2.weight", 2, 5)]); break;
            case "bias-shape": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), E("0.bias", 3), E("2.weight", 2, 4)]); break;
            case "weight-rank": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3, 1), E("2.weight", 2, 4)]); break;
            case "int-dtype":
                var bytes = SafeTensorsFile.Serialize([E("0.weight", 4, 3), E("2.weight", 2, 4)]);
                int hl = (int)BitConverter.ToUInt64(bytes, 0);
                System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(bytes, 8, hl).Replace("F32", "I32")).CopyTo(bytes, 8);
                File.WriteAllBytes(sd, bytes);
                break;
            case "nan":
                var w = F(8); w[5] = float.NaN;
                SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), SafeTensorEntry.Float32("2.weight", w, 2, 4)]);
                break;
            case "empty": SafeTensorsFile.Write(sd, [], new Dictionary<string, string> { ["k"] = "v" }); break;
            case "ok": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), E("0.bias", 4), E("2.weight", 2, 4)]); break;
            case "ok3": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), E("2.weight", 4, 4), E("4.weight", 2, 4)]); break;
            case "adjacent": SafeTensorsFile.Write(sd, [E("0.weight", 4, 3), E("1.weight", 2, 4)]); break;
        }
        string model = tmp.File("model.safetensors");
        var args = new List<string> { "import", "--from", sd, "--out", model };
        if (activations is not null) args.AddRange(["--activations", activations]);
        var r = CliRunner.Run([.. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        string line = r.Stderr.TrimEnd('\n', '\r');
        Assert.DoesNotContain('\n', line);
        Assert.StartsWith("backprop: ", line);
        Assert.Contains(sd, line);
        foreach (var word in words) Assert.Contains(word, line);
        Assert.False(File.Exists(model));
        output.WriteLine(line);
    }

    [Fact]
    public void LibraryImportResolvesActivationsAndReadsAnyPrecision()
    {
        using var tmp = new TempDir();
        var rng = new Random(5);
        var layers = RandomLinears(rng, [4, 5, 3], [0, 2], [true, true]);
        string sd = tmp.File("s.safetensors");
        SafeTensorsFile.Write(sd, StateDict(layers).Select(t => SafeTensorEntry.Float32(t.Name, t.Data, t.Shape)));
        var d = TorchImport.Import<double>(sd, "elu");
        var f = TorchImport.Import<float>(sd, "elu");
        Assert.Equal(["elu", "identity"], d.Layers.Select(l => l.Activation.Name));
        var x = RandomInput(rng, 3, 4);
        var yd = d.Predict(x.Cast<double>()).Data;
        var yf = f.Predict(x).Data;
        for (int i = 0; i < yf.Length; i++) Assert.Equal(yd[i], yf[i], 5);
        var info = TorchImport.Inspect(SafeTensorsFile.Read(sd));
        Assert.Equal([new TorchLayer(0, TorchLayer.Linear, "0.weight", "0.bias", 4, 5), new TorchLayer(2, TorchLayer.Linear, "2.weight", "2.bias", 5, 3)], info);
    }
}
