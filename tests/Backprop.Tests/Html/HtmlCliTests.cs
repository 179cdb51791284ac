using Backprop.Tests.Cli;
using TempDir = Backprop.Tests.Training.TempDir;

namespace Backprop.Tests.Html;

/// <summary>The pages' options without a browser: bad input is one line and exit 2, and no file is left half-written.</summary>
public class HtmlCliTests
{
    private static string Seed(string name) => CliRunner.DataPath("problems", name);

    [Fact]
    public void Format_html_with_json_is_refused_in_one_line()
    {
        foreach (var cmd in new[] { "explain", "diagnose" })
        {
            var r = CliRunner.Run(cmd, Seed("seed-fc-relu-batch-mean.json"), "--format", "html", "--json");
            Assert.Equal(2, r.ExitCode);
            Assert.Equal("", r.Stdout);
            var line = Assert.Single(r.Stderr.TrimEnd().Split('\n'));
            Assert.Contains("--format html", line, StringComparison.Ordinal);
            Assert.Contains("--json", line, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void An_unwritable_out_file_is_one_line_and_exit_2_and_leaves_the_old_file_whole()
    {
        using var tmp = new TempDir();
        string missing = Path.Combine(tmp.Path, "no-such-dir", "page.html");
        var r = CliRunner.Run("explain", Seed("seed-fc-relu-batch-mean.json"), "--format", "html", "--out", missing);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.TrimEnd().Split('\n'));
        Assert.Contains("--out", r.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.GetDirectoryName(missing)));

        // a directory given as the file: refused, and the directory keeps only what it had
        string dir = tmp.File("a-directory");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "kept");
        var d = CliRunner.Run("diagnose", Seed("seed-fc-relu-batch-mean.json"), "--format", "html", "--out", dir);
        Assert.Equal(2, d.ExitCode);
        Assert.Single(d.Stderr.TrimEnd().Split('\n'));
        Assert.Equal(["keep.txt"], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void An_unwritable_report_directory_is_one_line_and_exit_2_before_training()
    {
        using var tmp = new TempDir();
        string file = tmp.File("a-file");
        File.WriteAllText(file, "not a directory");
        var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "1", "--out", tmp.File("m.safetensors"),
            "--report", file, "--quiet");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--report", Assert.Single(r.Stderr.TrimEnd().Split('\n')), StringComparison.Ordinal);
        Assert.Equal("not a directory", File.ReadAllText(file));
        Assert.False(File.Exists(tmp.File("m.safetensors")));
    }

    [Fact]
    public void The_text_format_also_writes_to_out()
    {
        using var tmp = new TempDir();
        string path = tmp.File("derivation.txt");
        var r = CliRunner.Run("explain", Seed("seed-fc-relu-batch-mean.json"), "--out", path);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(CliRunner.Run("explain", Seed("seed-fc-relu-batch-mean.json")).Stdout, File.ReadAllText(path));
    }

    [Theory]
    [InlineData("8:0")]
    [InlineData("a:b")]
    [InlineData("1:2:3")]
    public void Bad_rows_are_one_line(string rows)
    {
        using var tmp = new TempDir();
        var r = CliRunner.Run("explain", "--model", tmp.File("m.safetensors"), "--data", CliRunner.DataPath("tabular", "iris.csv"), "--rows", rows);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--rows", Assert.Single(r.Stderr.TrimEnd().Split('\n')), StringComparison.Ordinal);
    }

    [Fact]
    public void Explain_and_diagnose_take_a_trained_model_on_rows_of_its_data_in_every_format()
    {
        using var tmp = new TempDir();
        string model = tmp.File("iris.safetensors"), iris = CliRunner.DataPath("tabular", "iris.csv");
        var train = CliRunner.Run("train", "--data", iris, "--layers", "4,24,3", "--epochs", "3", "--out", model, "--quiet");
        Assert.True(train.ExitCode == 0, train.Stderr);
        foreach (var format in new[] { "text", "markdown", "latex", "html" })
        {
            string path = tmp.File($"explain.{format}");
            var r = CliRunner.Run("explain", "--model", model, "--data", iris, "--rows", "0:8", "--format", format, "--out", path);
            Assert.True(r.ExitCode == 0, $"{format}: {r.Stderr}");   // exit 0: the finite-difference check passed
            string page = File.ReadAllText(path);
            Assert.Contains("rows 0:8", page, StringComparison.Ordinal);
            // W₁ is 24 × 4: more rows than are printed whole, so it is summarised with its top-left corner
            Assert.Contains("top-left corner", page, StringComparison.Ordinal);
        }
        var text = CliRunner.Run("explain", "--model", model, "--data", iris, "--rows", "0:8");
        Assert.Contains("on an even sample of", text.Stdout, StringComparison.Ordinal);
        var json = CliRunner.Run("explain", "--model", model, "--data", iris, "--rows", "2:5", "--json");
        Assert.Equal(0, json.ExitCode);
        Assert.True(json.Json.GetProperty("finite_difference").GetProperty("passed").GetBoolean());
        Assert.Equal(3, json.Json.GetProperty("forward")[0].GetProperty("value").GetArrayLength());
        var diag = CliRunner.Run("diagnose", "--model", model, "--data", iris, "--rows", "0:8", "--json");
        Assert.Equal(0, diag.ExitCode);
        Assert.Equal(2, diag.Json.GetProperty("layers").GetArrayLength());
    }
}
