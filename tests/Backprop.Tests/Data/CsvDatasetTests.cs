using System.Text;
using Backprop.Data;
using Backprop.IO;

namespace Backprop.Tests.Data;

public class CsvDatasetTests
{
    private static CsvDataset Text(string text, string? label = null, IReadOnlyList<string>? names = null)
        => CsvDataset.ParseText(text, "t.csv", label, names);

    [Fact]
    public void Iris()
    {
        var d = CsvDataset.Load(TestData.Tabular("iris.csv"));
        Assert.Equal(150, d.Count);
        Assert.Equal(4, d.FeatureCount);
        Assert.Equal(3, d.ClassCount);
        Assert.Equal(new[] { "setosa", "versicolor", "virginica" }, d.LabelNames);
        Assert.Equal("label", d.LabelColumn);
        Assert.Equal("sepal_length_(cm)", d.FeatureNames[0]);
        Assert.Equal(new[] { 5.1f, 3.5f, 1.4f, 0.2f }, d.Features[..4]);
        Assert.Equal(0, d.Labels[0]);
        Assert.Equal(2, d.Labels[149]);
        Assert.Equal(150 * 4, d.Features.Length);
    }

    [Theory]
    [InlineData("wine.csv", 178, 13, 3)]
    [InlineData("breast_cancer.csv", 569, 30, 2)]
    [InlineData("digits.csv.gz", 1797, 64, 10)]
    public void TabularCounts(string file, int rows, int features, int classes)
    {
        var d = CsvDataset.Load(TestData.Tabular(file));
        Assert.Equal(rows, d.Count);
        Assert.Equal(features, d.FeatureCount);
        Assert.Equal(classes, d.ClassCount);
        Assert.Equal(rows * features, d.Features.Length);
        Assert.All(d.Labels, l => Assert.InRange(l, 0, classes - 1));
        Assert.All(d.Features, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void DigitsLabelsAreTheirIntegers()
    {
        var d = CsvDataset.Load(TestData.Tabular("digits.csv.gz"));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => i.ToString()).ToArray(), d.LabelNames);
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, d.Labels[..5]);
        Assert.All(d.Features, v => Assert.InRange(v, 0f, 16f));
    }

    [Fact]
    public void GzipIsDetectedByMagicNotName()
    {
        using var tmp = new TempDir();
        var p = tmp.File("digits.csv"); // gzipped content, plain name
        File.Copy(TestData.Tabular("digits.csv.gz"), p);
        Assert.Equal(1797, CsvDataset.Load(p).Count);
    }

    [Fact]
    public void NumericLabelsSortNumerically()
    {
        var d = Text("a,label\n1,10\n2,2\n3,-1\n4,2.0\n");
        Assert.Equal(new[] { "-1", "2", "10" }, d.LabelNames);
        Assert.Equal(new[] { 2, 1, 0, 1 }, d.Labels);
    }

    [Fact]
    public void LabelColumnByName()
    {
        var digits = CsvDataset.Load(TestData.Tabular("digits.csv.gz"), labelColumn: "pixel_0_2");
        Assert.Equal("pixel_0_2", digits.LabelColumn);
        Assert.Equal(64, digits.FeatureCount);
        Assert.Equal("label", digits.FeatureNames[^1]);
        Assert.Equal(17, digits.ClassCount); // the values 0..16
        // In iris, using another column as the label makes the string 'label' column a feature: a clear error.
        var ex = Assert.Throws<DataFormatException>(() => CsvDataset.Load(TestData.Tabular("iris.csv"), labelColumn: "petal_width_(cm)"));
        Assert.EndsWith("iris.csv: row 2, column 'label': 'setosa' is not a number", ex.Message);

        var d = Text("y,a,b\n1,2,3\n0,5,6\n", label: "y");
        Assert.Equal(new[] { "a", "b" }, d.FeatureNames);
        Assert.Equal(new[] { 1, 0 }, d.Labels);
        Assert.Equal(new[] { 2f, 3f, 5f, 6f }, d.Features);
        Assert.Equal("Y", Text("Y,a\n1,2\n", label: "y").LabelColumn); // case-insensitive fallback

        var missing = Assert.Throws<DataFormatException>(() => Text("a,b\n1,2\n", label: "nope"));
        Assert.Equal("t.csv: no label column named 'nope'; the header has 'a', 'b'", missing.Message);
    }

    [Fact]
    public void LastColumnWhenNoLabelColumn()
    {
        var d = Text("a,b,cls\n1,2,x\n3,4,y\n");
        Assert.Equal("cls", d.LabelColumn);
        Assert.Equal(new[] { "x", "y" }, d.LabelNames);
    }

    [Fact]
    public void QuotesWhitespaceAndLineEndings()
    {
        var d = Text("\"a\" , \"b,c\",label\r\n 1.5 ,\"2\",\"he said \"\"hi\"\"\"\r\n\r\n3,4e1, \"multi\nline\" \r\n");
        Assert.Equal(new[] { "a", "b,c" }, d.FeatureNames);
        Assert.Equal(new[] { 1.5f, 2f, 3f, 40f }, d.Features);
        Assert.Equal(new[] { "he said \"hi\"", "multi\nline" }, d.LabelNames);
        var ex = Assert.Throws<DataFormatException>(() => Text("a,label\n\"1,x\n"));
        Assert.Equal("t.csv: row 2: a quoted field is never closed", ex.Message);
    }

    [Fact]
    public void NonNumericFeatureNamesRowColumnAndValue()
    {
        var lines = new StringBuilder("sepal,petal_width,label\n");
        for (int i = 2; i < 17; i++) lines.Append("1,2,a\n");
        lines.Append("1,abc,b\n");
        var ex = Assert.Throws<DataFormatException>(() => Text(lines.ToString()));
        Assert.Equal("t.csv: row 17, column 'petal_width': 'abc' is not a number", ex.Message);
        Assert.Contains("is not a finite number", Assert.Throws<DataFormatException>(() => Text("a,label\nNaN,1\n")).Message);
        Assert.Contains("'' is not a number", Assert.Throws<DataFormatException>(() => Text("a,b,label\n1,,1\n")).Message);
        // Invariant culture: a decimal comma is not a number (and splits the row).
        Assert.Contains("row 2 has 3 fields but the header has 2 columns", Assert.Throws<DataFormatException>(() => Text("a,label\n1,5,1\n")).Message);
    }

    [Fact]
    public void RaggedRowsEmptyFilesAndBadHeaders()
    {
        var ex = Assert.Throws<DataFormatException>(() => Text("a,b,label\n1,2,0\n1,2\n"));
        Assert.Equal("t.csv: row 3 has 2 fields but the header has 3 columns", ex.Message);
        Assert.Equal("t.csv: the file is empty (expected a header row and data rows)", Assert.Throws<DataFormatException>(() => Text("")).Message);
        Assert.Throws<DataFormatException>(() => Text("  \n\n"));
        Assert.Equal("t.csv: no data rows after the header", Assert.Throws<DataFormatException>(() => Text("a,label\n")).Message);
        Assert.Contains("no feature columns", Assert.Throws<DataFormatException>(() => Text("label\n1\n")).Message);
        Assert.Contains("twice", Assert.Throws<DataFormatException>(() => Text("a,a,label\n1,2,3\n")).Message);
        Assert.Contains("the label is empty", Assert.Throws<DataFormatException>(() => Text("a,label\n1,\n")).Message);
        Assert.Equal("/no/such.csv: no such file", Assert.Throws<DataFormatException>(() => CsvDataset.Load("/no/such.csv")).Message);
        using var tmp = new TempDir();
        File.WriteAllBytes(tmp.File("empty.csv"), []);
        Assert.EndsWith("empty.csv: the file is empty (expected a header row and data rows)", Assert.Throws<DataFormatException>(() => CsvDataset.Load(tmp.File("empty.csv"))).Message);
    }

    [Fact]
    public void SavedLabelNamesMapTheSameWay()
    {
        var train = CsvDataset.Load(TestData.Tabular("iris.csv"));
        // A predict-time file holding only some classes keeps the training indices.
        var d = Text("a,b,c,d,label\n1,2,3,4,virginica\n1,2,3,4,setosa\n", names: train.LabelNames);
        Assert.Equal(new[] { 2, 0 }, d.Labels);
        Assert.Equal(train.LabelNames, d.LabelNames);
        var ex = Assert.Throws<DataFormatException>(() => Text("a,label\n1,setosa\n2,rose\n", names: train.LabelNames));
        Assert.Equal("t.csv: row 3, column 'label': 'rose' is not one of the 3 known classes (setosa, versicolor, virginica)", ex.Message);
        // Numeric names match numerically.
        Assert.Equal(new[] { 1, 0 }, Text("a,label\n1,7.0\n2,3\n", names: ["3", "7"]).Labels);
        Assert.Equal(new[] { 1, 1 }, CsvDataset.MapLabels(["b", "b"], ["a", "b"], "m"));
        Assert.Throws<DataFormatException>(() => CsvDataset.MapLabels(["c"], ["a", "b"], "m"));
    }

    [Fact]
    public void LabelNamesRoundTripThroughMetadata()
    {
        var md = new Dictionary<string, string>();
        DataMetadata.WriteLabelNames(md, ["setosa", "versi\"color", "ü"]);
        Assert.Equal(new[] { "setosa", "versi\"color", "ü" }, DataMetadata.ReadLabelNames(md, "m"));
        Assert.Null(DataMetadata.ReadLabelNames(new Dictionary<string, string>(), "m"));
        Assert.Throws<DataFormatException>(() => DataMetadata.ReadLabelNames(new Dictionary<string, string> { ["label_names"] = "[1," }, "m"));
        Assert.Throws<DataFormatException>(() => DataMetadata.ReadLabelNames(new Dictionary<string, string> { ["label_names"] = "[1]" }, "m"));
    }
}
