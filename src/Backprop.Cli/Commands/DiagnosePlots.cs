using System.Text.Json;
using Backprop.IO;

namespace Backprop.Cli.Commands;

/// <summary>
/// The distribution of ∂L/∂h_l per layer, as the fraction of elements per decade of |∂L/∂h|: vanishing gradients
/// show as curves that slide left, layer by layer, towards the input.
/// </summary>
public static class DiagnosePlots
{
    public const int Width = 800, Height = 500;

    public sealed record Series(int Layer, double[] Log10Magnitude, double[] Fraction, int Zeros);

    public static IReadOnlyList<Series> Histograms(IReadOnlyList<double[]> gradients, int binsPerDecade = 4)
    {
        var all = gradients.SelectMany(g => g).Where(v => v != 0 && double.IsFinite(v)).Select(v => Math.Log10(Math.Abs(v))).ToArray();
        double lo = all.Length == 0 ? -1 : Math.Floor(all.Min()), hi = all.Length == 0 ? 0 : Math.Ceiling(all.Max());
        if (hi <= lo) hi = lo + 1;
        int bins = (int)Math.Round((hi - lo) * binsPerDecade);
        var result = new List<Series>();
        for (int l = 0; l < gradients.Count; l++)
        {
            var counts = new double[bins];
            int zeros = 0;
            foreach (var v in gradients[l])
            {
                if (v == 0 || !double.IsFinite(v)) { zeros++; continue; }
                int b = Math.Clamp((int)((Math.Log10(Math.Abs(v)) - lo) * binsPerDecade), 0, bins - 1);
                counts[b]++;
            }
            double total = Math.Max(1, gradients[l].Length);
            result.Add(new Series(l + 1, Enumerable.Range(0, bins).Select(b => lo + (b + 0.5) / binsPerDecade).ToArray(),
                counts.Select(c => c / total).ToArray(), zeros));
        }
        return result;
    }

    public static void Write(string dir, IReadOnlyList<double[]> gradients)
    {
        Directory.CreateDirectory(dir);
        var series = Histograms(gradients);
        var plot = new ScottPlot.Plot();
        foreach (var s in series)
        {
            var line = plot.Add.Scatter(s.Log10Magnitude, s.Fraction);
            line.LegendText = $"layer {s.Layer}";
        }
        plot.Title("Distribution of ∂L/∂h per layer");
        plot.XLabel("log₁₀ |∂L/∂h|");
        plot.YLabel("fraction of elements");
        plot.ShowLegend();
        AtomicFile.WriteAllBytes(Path.Combine(dir, "output-gradients.png"), plot.GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png));
        AtomicFile.WriteAllText(Path.Combine(dir, "output-gradients.json"),
            JsonSerializer.Serialize(series, CliJsonContext.Default.IReadOnlyListSeries));
    }
}
