using System.Text.Json;
using Backprop.Nn;
using Backprop.Tests.Data;
using Backprop.Training;

namespace Backprop.Tests.Cli;

public sealed class SummaryCommandTests
{
    [Fact]
    public void LayersSummaryCountsDenseParametersAndFlops()
    {
        int[] sizes = [7, 5, 3];
        var r = CliRunner.Run("summary", "--layers", string.Join(",", sizes), "--activation", "tanh", "--batch", "16", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var layers = r.Json.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(sizes.Length - 1, layers.Length);
        long parameters = 0, flops = 0;
        for (int i = 0; i + 1 < sizes.Length; i++)
        {
            long p = (long)sizes[i] * sizes[i + 1] + sizes[i + 1];
            long f = 2L * sizes[i] * sizes[i + 1] + sizes[i + 1] + (i + 2 < sizes.Length ? sizes[i + 1] : 0); // + tanh per element when hidden
            Assert.Equal(p, layers[i].GetProperty("parameters").GetInt64());
            Assert.Equal(f, layers[i].GetProperty("flops").GetInt64());
            Assert.Equal(sizes[i + 1], layers[i].GetProperty("output_shape")[1].GetInt32());
            parameters += p;
            flops += f;
        }
        Assert.Equal(parameters, r.Json.GetProperty("parameters").GetInt64());
        Assert.Equal(flops, r.Json.GetProperty("flops").GetInt64());
        var mem = r.Json.GetProperty("training_memory");
        Assert.Equal(parameters * 4, mem.GetProperty("parameters").GetInt64());
        Assert.Equal(parameters * 4 * 2, mem.GetProperty("optimizer_state").GetInt64()); // Adam: m and v
        long total = new[] { "parameters", "gradients", "optimizer_state", "buffers", "activations" }.Sum(k => mem.GetProperty(k).GetInt64());
        Assert.Equal(total, mem.GetProperty("total").GetInt64());
        Assert.Equal(2L * mem.GetProperty("activation_values_per_sample").GetInt64() * 16 * 4, mem.GetProperty("activations").GetInt64());
    }

    [Fact]
    public void ArchSummaryCountsNormBuffersAndOptimizerState()
    {
        var r = CliRunner.Run("summary", "--arch", "6-8:bn:relu:drop0.5-4:ln:tanh-3", "--optimizer", "sgd", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var net = ArchitectureSpec.Parse("6-8:bn:relu:drop0.5-4:ln:tanh-3").Create<float>();
        var layers = r.Json.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(net.Layers.Select(l => l.Kind), layers.Select(l => l.GetProperty("kind").GetString()));
        Assert.Equal(net.ParameterCount, r.Json.GetProperty("parameters").GetInt64());
        Assert.Equal(net.Layers.Sum(l => l.Buffers.Sum(b => b.Value.Length)), r.Json.GetProperty("buffers").GetInt64());
        var bn = layers.Single(l => l.GetProperty("kind").GetString() == BatchNormKind.KindName);
        Assert.Equal(2 * bn.GetProperty("outputs").GetInt64(), bn.GetProperty("buffers").GetInt64());
        Assert.Equal(0, layers.Single(l => l.GetProperty("kind").GetString() == DropoutKind.KindName).GetProperty("flops").GetInt64());
        var mem = r.Json.GetProperty("training_memory");
        Assert.Equal(OptimizerRegistry.Default.Find("sgd")!.StateNames.Length * mem.GetProperty("parameters").GetInt64(), mem.GetProperty("optimizer_state").GetInt64());
    }

    [Fact]
    public void ModelSummaryMatchesTheModelAndPrintsATable()
    {
        using var tmp = new TempDir();
        string path = tmp.File("m.safetensors");
        var net = ArchitectureSpec.Parse("5-6:ln:gelu-2").Create<float>();
        ModelFile.Save(path, net);
        var r = CliRunner.Run("summary", "--model", path);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("layernorm 6 gelu", r.Stdout);
        Assert.Contains("total", r.Stdout);
        Assert.Contains("training memory at batch 128 with adam", r.Stdout);
        Assert.Contains(net.ParameterCount.ToString("N0", System.Globalization.CultureInfo.InvariantCulture), r.Stdout);
    }

    [Theory]
    [InlineData(new string[] { }, "exactly one of")]
    [InlineData(new[] { "--layers", "4,3", "--arch", "4-3" }, "exactly one of")]
    [InlineData(new[] { "--layers", "4,3", "--batch", "0" }, "--batch 0")]
    [InlineData(new[] { "--layers", "4,x" }, "'x'")]
    [InlineData(new[] { "--arch", "4-3:bogus-2" }, "bogus")]
    [InlineData(new[] { "--layers", "4,3", "--optimizer", "lbfgs" }, "lbfgs")]
    [InlineData(new[] { "--arch", "4-3", "--dropout", "0.5" }, "--dropout")]
    public void BadInputIsOneLineExit2(string[] args, string word)
    {
        var r = CliRunner.Run(["summary", .. args]);
        Assert.Equal(2, r.ExitCode);
        string line = r.Stderr.TrimEnd('\n', '\r');
        Assert.DoesNotContain('\n', line);
        Assert.Contains(word, line);
    }
}
