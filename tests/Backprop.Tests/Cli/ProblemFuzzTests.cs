using CsCheck;
using Backprop.Problems;

namespace Backprop.Tests.Cli;

/// <summary>Corrupted and truncated problem files give a clean ProblemFormatException or a valid problem, never another exception.</summary>
public class ProblemFuzzTests
{
    private static readonly string Source = File.ReadAllText(CliRunner.DataPath("problems", "seed-fc-relu-batch-mean.json"));
    private static readonly string Small = File.ReadAllText(CliRunner.DataPath("problems", "random-009.json"));

    private static void ParseCleanly(string text)
    {
        try
        {
            var spec = ProblemFile.Parse(text);
            var p = new Problem<double>(spec);
            var g = p.Gradients();
            Assert.Equal(spec.BatchSize, g.Output.Rows);
        }
        catch (ProblemFormatException e)
        {
            Assert.DoesNotContain('\n', e.Message);
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
        }
    }

    [Fact]
    public void EveryTruncationIsAnErrorOrAProblem()
    {
        for (int n = 0; n < Small.Length; n++) ParseCleanly(Small[..n]);
        Gen.Int[0, Source.Length].Sample(n => ParseCleanly(Source[..n]), iter: 300);
    }

    [Fact]
    public void RandomCharacterEditsAreAnErrorOrAProblem()
    {
        const string alphabet = "[]{}\",:.-+eE0123456789 aNInfity\\";
        Gen.Select(Gen.Int[0, Small.Length - 1], Gen.Int[0, alphabet.Length - 1], Gen.Int[0, 2]).Array[1, 6].Sample(edits =>
        {
            var chars = Small.ToList();
            foreach (var (pos, ch, kind) in edits)
            {
                int p = Math.Min(pos, chars.Count - 1);
                if (p < 0) break;
                if (kind == 0) chars[p] = alphabet[ch];
                else if (kind == 1) chars.Insert(p, alphabet[ch]);
                else chars.RemoveAt(p);
            }
            ParseCleanly(new string(chars.ToArray()));
        }, iter: 2000);
    }

    [Fact]
    public void RandomStructurallyValidJsonIsAnErrorOrAProblem()
    {
        var number = Gen.OneOf(Gen.Double[-1e3, 1e3].Select(d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture)), Gen.Const("1e999"), Gen.Const("NaN"), Gen.Const("\"x\""), Gen.Const("null"));
        var row = number.Array[0, 4].Select(a => "[" + string.Join(",", a) + "]");
        var matrix = row.Array[0, 4].Select(a => "[" + string.Join(",", a) + "]");
        var act = Gen.Int[0, 4].Select(i => new[] { "relu", "sigmoid", "softmax", "gelu", "bogus" }[i]);
        var layer = Gen.Select(matrix, Gen.Bool, number.Array[0, 4], act).Select((w, hasBias, b, a) =>
            "{\"weight\":" + w + (hasBias ? ",\"bias\":[" + string.Join(",", b) + "]" : "") + ",\"activation\":\"" + a + "\"}");
        var loss = Gen.Int[0, 4].Select(i => new[] { "mse", "cross_entropy", "bce_with_logits", "none", "hinge" }[i]);
        var target = Gen.OneOf(matrix, Gen.Int[-1, 4].Array[0, 4].Select(a => "[" + string.Join(",", a) + "]"));
        Gen.Select(layer.Array[0, 3], matrix, loss, target).Sample((layers, input, l, t) =>
            ParseCleanly("{\"layers\":[" + string.Join(",", layers) + "],\"input\":" + input + ",\"loss\":\"" + l + "\",\"target\":" + t + "}"),
            iter: 3000);
    }
}
