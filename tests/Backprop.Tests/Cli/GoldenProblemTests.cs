using System.Text.Json;

namespace Backprop.Tests.Cli;

/// <summary>
/// Every problem file with PyTorch's float64 answers reproduces them through `backprop grad` and
/// `backprop jacobian` to |a − b| ≤ 1e-10 + 1e-8·|b|.
/// </summary>
public class GoldenProblemTests
{
    private const double Atol = 1e-10, Rtol = 1e-8;

    public static TheoryData<string> Problems()
    {
        var data = new TheoryData<string>();
        foreach (var dir in new[] { "problems", "problems-generated", "problems-layers", "problems-layers-generated" })
        {
            var path = CliRunner.DataPath(dir);
            if (!Directory.Exists(path)) continue;
            foreach (var f in Directory.GetFiles(path, "*.json").Order()) data.Add(Path.Combine(dir, Path.GetFileName(f)));
        }
        return data;
    }

    [Fact]
    public void TheLayerReferenceProblemsAreInTheRepo() =>
        Assert.True(Directory.GetFiles(CliRunner.DataPath("problems-layers"), "*.json").Length >= 16);

    [Fact]
    public void TheSharedReferenceProblemsAreInTheRepo() =>
        Assert.True(Directory.GetFiles(CliRunner.DataPath("problems"), "*.json").Length >= 40);

    [Theory]
    [MemberData(nameof(Problems))]
    public void GradReproducesPyTorch(string file)
    {
        var path = CliRunner.DataPath(file);
        var expected = JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("expected");
        var r = CliRunner.Run("grad", path);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var actual = r.Json;

        if (expected.TryGetProperty("loss", out var loss))
            AssertClose(loss, actual.GetProperty("loss"), "loss");
        else
            Assert.False(actual.TryGetProperty("loss", out _), "loss none prints no loss");
        AssertClose(expected.GetProperty("output"), actual.GetProperty("output"), "output");

        var eg = expected.GetProperty("gradients");
        var ag = actual.GetProperty("gradients");
        var el = eg.GetProperty("layers").EnumerateArray().ToArray();
        var al = ag.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(el.Length, al.Length);
        for (int i = 0; i < el.Length; i++)
        {
            // the same parameter names (weight, bias; none for dropout or a norm layer without affine part), each close
            Assert.Equal(el[i].EnumerateObject().Select(p => p.Name).Order(), al[i].EnumerateObject().Select(p => p.Name).Order());
            foreach (var p in el[i].EnumerateObject()) AssertClose(p.Value, al[i].GetProperty(p.Name), $"layers[{i}].{p.Name}");
        }
        AssertClose(eg.GetProperty("input"), ag.GetProperty("input"), "input");

        // a training batch norm's running statistics after the forward pass; {} where a layer's buffers are unchanged
        if (expected.TryGetProperty("buffers", out var eBuf))
        {
            var ebl = eBuf.GetProperty("layers").EnumerateArray().ToArray();
            var abl = actual.GetProperty("buffers").GetProperty("layers").EnumerateArray().ToArray();
            Assert.Equal(ebl.Length, abl.Length);
            for (int i = 0; i < ebl.Length; i++)
                foreach (var p in ebl[i].EnumerateObject()) AssertClose(p.Value, abl[i].GetProperty(p.Name), $"buffers.layers[{i}].{p.Name}");
        }
    }

    [Theory]
    [MemberData(nameof(Problems))]
    public void JacobianReproducesPyTorch(string file)
    {
        var path = CliRunner.DataPath(file);
        var expected = JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("expected");
        if (!expected.TryGetProperty("jacobian_output", out var jacobians)) return;
        foreach (var j in jacobians.EnumerateArray())
        {
            int layer = j.GetProperty("layer").GetInt32();
            string wrt = j.GetProperty("wrt").GetString()!;
            var r = CliRunner.Run("jacobian", path, "--wrt", $"layers.{layer}.{wrt}");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var rows = j.GetProperty("rows");
            AssertClose(rows, r.Json.GetProperty("rows"), $"d output / d layers.{layer}.{wrt}");
            var shape = r.Json.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            Assert.Equal(rows.GetArrayLength(), shape[0]);
            Assert.Equal(rows[0].GetArrayLength(), shape[1]);
        }
    }

    internal static void AssertClose(JsonElement expected, JsonElement actual, string what)
    {
        var e = Flatten(expected).ToArray();
        var a = Flatten(actual).ToArray();
        Assert.True(e.Length == a.Length, $"{what}: {a.Length} values, expected {e.Length}");
        for (int i = 0; i < e.Length; i++)
        {
            double tol = Atol + Rtol * Math.Abs(e[i]);
            Assert.True(Math.Abs(a[i] - e[i]) <= tol, $"{what}[{i}]: got {a[i]:R}, PyTorch {e[i]:R} (|Δ| = {Math.Abs(a[i] - e[i]):E3} > {tol:E3})");
        }
    }

    private static IEnumerable<double> Flatten(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Number) { yield return e.GetDouble(); yield break; }
        foreach (var x in e.EnumerateArray())
            foreach (var v in Flatten(x)) yield return v;
    }
}
