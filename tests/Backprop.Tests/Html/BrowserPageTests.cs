using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Backprop.Explain;
using Backprop.Tests.Cli;
using TempDir = Backprop.Tests.Training.TempDir;

namespace Backprop.Tests.Html;

/// <summary>
/// The explain, diagnose and training-report pages opened in a real browser (headless Chromium): each page parses,
/// its MathML renders with a size (the page's own script measures every &lt;math&gt; and writes the result into the
/// DOM), its SVGs are there and have a size, no script error reaches the console, nothing is loaded from anywhere,
/// and the numbers on it are the ones `grad` computes. Screenshots at 1280 px and at a phone's width are kept under
/// out/html-pages for a person to look at.
/// </summary>
public partial class BrowserPageTests
{
    public static TheoryData<string> SeedProblems()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(CliRunner.DataPath("problems"), "seed-*.json").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    private static string ScreenshotDir
    {
        get
        {
            string dir = Path.Combine(CliRunner.RepoRoot, "out", "html-pages");
            Directory.CreateDirectory(dir);
            return dir;
        }
    }

    /// <summary>The checks every page passes; returns the dumped DOM.</summary>
    private static string CheckPage(string page, string name, bool mathml)
    {
        string source = File.ReadAllText(page);
        Assert.StartsWith("<!DOCTYPE html>", source, StringComparison.Ordinal);
        // self-contained: no address of anything anywhere in the page, no external script, style or image
        Assert.DoesNotMatch(new Regex("https?://", RegexOptions.IgnoreCase), source);
        Assert.DoesNotMatch(new Regex("<(script|img|link|iframe)[^>]*\\s(src|href)=", RegexOptions.IgnoreCase), source);

        var run = Chromium.DumpDom(page);
        Assert.True(run.ExitCode == 0, $"chromium exited {run.ExitCode}: {run.Stderr}");
        string dom = run.Stdout;
        // the page parses as written: the browser's DOM has every section and closes the document
        Assert.Contains("</html>", dom, StringComparison.Ordinal);
        Assert.Equal(Regex.Count(source, "<section"), Regex.Count(dom, "<section"));
        Assert.Equal("yes", Chromium.BodyAttribute(dom, "data-measured"));
        Assert.Equal("", Chromium.BodyAttribute(dom, "data-script-errors"));
        Assert.DoesNotContain(run.Console, l => l.Contains("Uncaught", StringComparison.Ordinal) || l.Contains("Error", StringComparison.Ordinal));
        int svgs = int.Parse(Chromium.BodyAttribute(dom, "data-svg-count")!, CultureInfo.InvariantCulture);
        Assert.True(svgs >= 2, $"{svgs} SVGs on the page");
        Assert.Equal("0", Chromium.BodyAttribute(dom, "data-svg-zero-size"));
        if (mathml)
        {
            int maths = int.Parse(Chromium.BodyAttribute(dom, "data-math-count")!, CultureInfo.InvariantCulture);
            Assert.True(maths >= 10, $"{maths} <math> elements on the page");
            Assert.Equal("yes", Chromium.BodyAttribute(dom, "data-mathml-rendered"));
            Assert.True(Chromium.BodyAttribute(dom, "data-math-zero-size") == "0",
                $"{Chromium.BodyAttribute(dom, "data-math-zero-size")} of {maths} <math> elements have no size (smallest {Chromium.BodyAttribute(dom, "data-math-min-size")})");
        }
        foreach (var (width, height, suffix) in new[] { (1280, 2400, ""), (390, 1600, "-phone") })
        {
            string png = Path.Combine(ScreenshotDir, $"{name}{suffix}.png");
            File.Delete(png);
            var shot = Chromium.Screenshot(page, png, width, height);
            Assert.True(shot.ExitCode == 0 && File.Exists(png), $"no screenshot of {page}: {shot.Stderr}");
            Assert.Equal((width, height), Chromium.PngSize(png));
        }
        return dom;
    }

    [Theory]
    [MemberData(nameof(SeedProblems))]
    public void Explain_page_of_a_seed_problem_renders_in_chromium_with_the_true_gradient(string file)
    {
        using var tmp = new TempDir();
        string problem = CliRunner.DataPath("problems", file), page = tmp.File("explain.html");
        var r = CliRunner.Run("explain", problem, "--format", "html", "--out", page);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("", r.Stdout);
        string dom = CheckPage(page, "explain-" + Path.GetFileNameWithoutExtension(file), mathml: true);
        string text = Chromium.Text(dom);

        // the true gradient, from `grad` (the tape), printed as the derivation prints numbers
        var grad = CliRunner.Run("grad", problem);
        Assert.Equal(0, grad.ExitCode);
        var weight = grad.Json.GetProperty("gradients").GetProperty("layers")[0].GetProperty("weight");
        foreach (var row in weight.EnumerateArray())
            foreach (var v in row.EnumerateArray())
                Assert.Contains(DerivationRenderer.Number(v.GetDouble()), text, StringComparison.Ordinal);
        Assert.Contains("Finite-difference check: pass", text, StringComparison.Ordinal);
        // the network's units and the asked layer's edges are drawn, and the asked gradient's path is marked
        Assert.Contains("class=\"network\"", dom, StringComparison.Ordinal);
        Assert.Contains("class=\"path\"", dom, StringComparison.Ordinal);
        Assert.Contains("<mfrac>", dom, StringComparison.Ordinal);
    }

    [Fact]
    public void Explain_page_in_row_notation_renders_the_recurrences()
    {
        using var tmp = new TempDir();
        string page = tmp.File("rows.html");
        var r = CliRunner.Run("explain", CliRunner.DataPath("problems", "seed-sigmoid-chain-jacobian.json"), "--format", "html", "--notation", "rows", "--out", page);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string dom = CheckPage(page, "explain-rows-notation", mathml: true);
        // db₁ = dy₂·diag(σ′(…)): the row-vector recurrence's names, typeset
        Assert.Contains("<mi>diag</mi>", dom, StringComparison.Ordinal);
        Assert.Contains("row-vector recurrences", Chromium.Text(dom), StringComparison.Ordinal);
    }

    [GeneratedRegex("<rect[^>]*data-value=\"([^\"]+)\"")]
    private static partial Regex BarValue();

    [Fact]
    public void Diagnose_page_of_the_vanishing_problem_shows_bars_falling_decade_by_decade_with_the_verdict()
    {
        using var tmp = new TempDir();
        string problem = CliRunner.DataPath("problems", "seed-sigmoid-small-weights-vanishing.json"), page = tmp.File("diagnose.html");
        var r = CliRunner.Run("diagnose", problem, "--format", "html", "--out", page);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string dom = CheckPage(page, "diagnose-vanishing", mathml: false);
        var json = CliRunner.Run("diagnose", problem, "--json").Json;
        Assert.True(json.GetProperty("vanishing").GetBoolean());
        Assert.Contains(json.GetProperty("verdict").GetString()!, Chromium.Text(dom), StringComparison.Ordinal);
        // the ‖∂L/∂W‖ bars, layer 1 first: each at least 3× below the next, over more than a decade a layer on average
        var chart = dom[dom.IndexOf("id=\"gradient-norms\"", StringComparison.Ordinal)..];
        chart = chart[..chart.IndexOf("</svg>", StringComparison.Ordinal)];
        var layers = json.GetProperty("layers").EnumerateArray().ToList();
        var bars = BarValue().Matches(chart).Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        var weightBars = bars.Where((_, i) => i % 2 == 0).ToList(); // grouped bars: ‖∂L/∂W‖, ‖∂L/∂h‖ per layer
        Assert.Equal(layers.Count, weightBars.Count);
        for (int l = 0; l < layers.Count; l++)
            Assert.Equal(layers[l].GetProperty("weight_gradient_norm").GetDouble(), weightBars[l], 12);
        for (int l = 1; l < weightBars.Count; l++) Assert.True(weightBars[l] > 3 * weightBars[l - 1], $"layer {l + 1}'s bar is not well above layer {l}'s");
        Assert.True(Math.Log10(weightBars[^1] / weightBars[0]) > weightBars.Count - 1, "the bars span less than a decade a layer");
    }

    [Fact]
    public void Training_report_renders_in_chromium_with_the_run_s_figures()
    {
        using var tmp = new TempDir();
        string dir = tmp.File("report");
        var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--layers", "4,16,3", "--epochs", "12", "--lr", "0.02",
            "--batch", "16", "--out", tmp.File("iris.safetensors"), "--report", dir, "--quiet", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        string page = Path.Combine(dir, "report.html");
        string dom = CheckPage(page, "train-report-iris", mathml: false);
        string text = Chromium.Text(dom);
        double accuracy = r.Json.GetProperty("test_accuracy").GetDouble(), loss = r.Json.GetProperty("test_loss").GetDouble();
        Assert.Contains($"test accuracy {(accuracy * 100).ToString("F2", CultureInfo.InvariantCulture)}%", Regex.Replace(text, "\\s+", " "), StringComparison.Ordinal);
        Assert.Contains(loss.ToString("F4", CultureInfo.InvariantCulture), text, StringComparison.Ordinal);
        foreach (var id in new[] { "loss", "metric-accuracy", "learning-rate", "gradient-norms-over-epochs", "confusion-matrix" })
            Assert.Contains($"id=\"{id}\"", dom, StringComparison.Ordinal);
        Assert.Contains("finished: 12 epochs", text, StringComparison.Ordinal);
        Assert.Contains("verdict:", text, StringComparison.Ordinal);
        // the heat map's cells count the test rows, and its diagonal holds the test accuracy's share of them
        var cells = Regex.Matches(dom[dom.IndexOf("id=\"confusion-matrix\"", StringComparison.Ordinal)..], "<title>true ([^,<]*), predicted ([^:<]*): (\\d+)</title>")
            .Select(m => (True: m.Groups[1].Value, Predicted: m.Groups[2].Value, Count: int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))).ToList();
        int testRows = int.Parse(Regex.Match(text, "(\\d+) test").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.Equal(3 * 3, cells.Count);
        Assert.Equal(testRows, cells.Sum(c => c.Count));
        Assert.Equal(accuracy, cells.Where(c => c.True == c.Predicted).Sum(c => c.Count) / (double)testRows, 9);
    }
}
