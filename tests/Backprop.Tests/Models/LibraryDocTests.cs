using Backprop.Data;
using Backprop.Explain;
using Backprop.Health;
using Backprop.Models;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Training;
using TempDir = Backprop.Tests.Training.TempDir;

namespace Backprop.Tests.Models;

/// <summary>
/// docs/library.md's examples: each C# block there is written here as it stands (checked line by line), and runs, so
/// that the documentation cannot rot.
/// </summary>
public sealed class LibraryDocTests
{
    private static readonly string DocPath = Path.Combine(CliRunner.RepoRoot, "docs", "library.md");
    private static readonly string ThisFile = Path.Combine(CliRunner.RepoRoot, "tests", "Backprop.Tests", "Models", "LibraryDocTests.cs");

    /// <summary>
    /// Each ```csharp block of docs/library.md and the README's high-level example, as trimmed non-empty lines (usings
    /// left out: they stand at the top of this file).
    /// </summary>
    private static List<string[]> DocBlocks() =>
        [.. Blocks(DocPath), .. Blocks(Path.Combine(CliRunner.RepoRoot, "README.md")).Where(b => b.Contains("using Backprop.Models;"))];

    private static IEnumerable<string[]> Blocks(string path)
    {
        var blocks = new List<string[]>();
        List<string>? current = null;
        foreach (var line in File.ReadAllLines(path))
        {
            if (current is null && line.Trim() == "```csharp") current = [];
            else if (current is not null && line.Trim() == "```")
            {
                blocks.Add([.. current]);
                current = null;
            }
            else if (current is not null && line.Trim().Length > 0 && !line.StartsWith("using ", StringComparison.Ordinal)) current.Add(line.Trim());
        }
        return blocks;
    }

    [Fact]
    public void Every_example_in_the_document_is_code_this_test_runs()
    {
        var source = File.ReadAllLines(ThisFile).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        var blocks = DocBlocks();
        Assert.True(blocks.Count >= 9, $"docs/library.md and the README have {blocks.Count} C# blocks");
        foreach (var block in blocks)
        {
            bool found = Enumerable.Range(0, source.Length - block.Length + 1).Any(i => source.AsSpan(i, block.Length).SequenceEqual(block));
            Assert.True(found, "this block of docs/library.md or the README is not in LibraryDocTests.cs as written:\n" + string.Join("\n", block));
        }
    }

    [Fact]
    public void The_readme_example_runs()
    {
        using var tmp = new TempDir();
        var (features, labels, testFeatures, testLabels) = Iris();
        string modelPath = Path.Combine(tmp.Path, "iris.safetensors");
        string printed = CliRunner.CaptureConsole(() =>
        {
            var model = Model.Build().Input(4).Dense(16, "relu").Dropout(0.1).Output(3).ForClassification();
            var result = model.Fit(features, labels, new FitOptions { Epochs = 100, BatchSize = 16, LearningRate = 0.01 });
            Console.WriteLine(model.Evaluate(testFeatures, testLabels)["accuracy"]);
            int species = model.PredictClass([5.1f, 3.5f, 1.4f, 0.2f]);   // thread-safe: one model serves every request
            Assert.Equal(0, species);
            Assert.Equal(100, result.History.Count);
            model.Save(modelPath);                                       // the CLI's model file; Model.Load reads it back
            Assert.Equal(model.Predict(testFeatures), Model.Load(modelPath).Predict(testFeatures));
        });
        Assert.True(double.Parse(printed.Trim(), System.Globalization.CultureInfo.CurrentCulture) > 0.8, printed);
    }

    /// <summary>The iris table: 80% to train on and 20% held out (stratified, seed 0), raw features.</summary>
    private static (float[,] Features, int[] Labels, float[,] TestFeatures, int[] TestLabels) Iris()
    {
        var csv = CsvDataset.LoadFor(CliRunner.DataPath("tabular", "iris.csv"), new CsvTargets());
        var split = DataSplit.Split(csv.Data, 0, 0.2, 0, stratified: true);
        static float[,] M(LabeledData d)
        {
            var m = new float[d.Count, d.FeatureCount];
            for (int i = 0; i < d.Count; i++) for (int j = 0; j < d.FeatureCount; j++) m[i, j] = d.Features[i * d.FeatureCount + j];
            return m;
        }
        return (M(split.Train), split.Train.Labels, M(split.Test), split.Test.Labels);
    }

    [Fact]
    public void The_examples_run_and_print_what_the_document_says()
    {
        using var tmp = new TempDir();
        var (features, labels, testFeatures, testLabels) = Iris();
        string irisCsv = CliRunner.DataPath("tabular", "iris.csv");
        string checkpoint = tmp.File("iris.ckpt"), modelPath = tmp.File("iris.safetensors"), onnxPath = tmp.File("iris.onnx");
        string stateDictPath = CliRunner.DataPath("torch-models", "mlp-0.safetensors");
        var batch = new float[4, 4];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) batch[i, j] = testFeatures[i, j];
        int[] batchLabels = testLabels[..4];
        string verdict = "";

        string printed = CliRunner.CaptureConsole(() =>
        {
            var model = Model.Build()
                .Input(4)                                        // features per row
                .Dense(16, "relu")                               // a dense layer and its activation
                .Dropout(0.1)
                .LayerNorm()
                .Output("setosa", "versicolor", "virginica")     // a linear output layer, one output per class
                .Seed(0)                                         // the weights' initialisation
                .ForClassification();
            Console.WriteLine(model);   // classification 4-16:relu:drop0.1:ln-3 (163 parameters)

            var result = model.Fit(features, labels, new FitOptions
            {
                Epochs = 100, BatchSize = 16, LearningRate = 0.01,
                ValidationSplit = 0.15, Patience = 20,           // early stopping keeps the best epoch's weights
                OnEpoch = e => Console.WriteLine($"epoch {e.Result.Epoch}: loss {e.Result.TrainLoss:F4}"),
            });
            Console.WriteLine($"{result.History.Count} epochs; kept epoch {result.BestEpoch?.ToString() ?? "the last"}");
            Assert.InRange(result.History.Count, 21, 100);

            var fromFile = Model.Build().Input(4).Dense(16, "relu").Output(3).ForClassification();
            var run = fromFile.Fit(irisCsv, new FitOptions { Epochs = 60, BatchSize = 16, LearningRate = 0.01 });
            Console.WriteLine($"test accuracy {run.TestAccuracy:P1}; classes {string.Join(", ", fromFile.LabelNames)}");
            Assert.True(run.TestAccuracy > 0.8, $"test accuracy {run.TestAccuracy}");

            using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            var options = new FitOptions { Epochs = 200, CheckpointPath = checkpoint };
            try { model.Fit(features, labels, options, cancel.Token); }
            catch (OperationCanceledException) { model.Fit(features, labels, options with { ResumeFrom = checkpoint }); }

            ModelEvaluation test = model.Evaluate(testFeatures, testLabels);
            Console.WriteLine($"accuracy {test["accuracy"]:P1}, balanced {test["balanced_accuracy"]:P1}, loss {test.Loss:F4}");
            float[] probabilities = model.Predict([5.1f, 3.5f, 1.4f, 0.2f]);     // softmax over the classes
            string species = model.PredictLabel([5.1f, 3.5f, 1.4f, 0.2f]);       // "setosa"
            float[,] all = model.Predict(testFeatures);                          // one row of probabilities per row
            Assert.Equal(1.0, probabilities.Sum(), 5);
            Assert.Equal(testLabels.Length, all.GetLength(0));
            Assert.True(test["accuracy"] > 0.8, $"accuracy {test["accuracy"]}");
            Assert.Equal("setosa", species);

            Func<float[], string> handler = row => model.PredictLabel(row);   // e.g. app.MapPost("/predict", handler)
            Parallel.For(0, 1000, i => handler([5.1f, 3.5f, 1.4f, 0.2f + i % 3]));

            model.Save(modelPath);                        // backprop evaluate --model … reads it
            var loaded = Model.Load(modelPath);           // or a model the CLI trained
            loaded.ExportOnnx(onnxPath);                  // input "input" [batch, 4], output "output" [batch, 3] (raw outputs)
            var imported = Model.ImportTorch(stateDictPath, "tanh");   // an nn.Sequential state dict (safetensors)
            Assert.Equal(["setosa", "versicolor", "virginica"], loaded.LabelNames);
            Assert.Equal(model.Predict(testFeatures), loaded.Predict(testFeatures));
            Assert.True(File.Exists(onnxPath));
            Assert.Equal(10, imported.Outputs);

            string derivation = model.Explain(batch, batchLabels, wrt: "layers.0.weight");
            Console.WriteLine(derivation);                // forward pass, δ by δ, ∂L/∂W₁, each checked
            HealthReport health = model.Diagnose(batch, batchLabels);
            Console.WriteLine(health.Verdict);            // "healthy", or e.g. vanishing gradients and what to try
            Assert.Contains("Backward pass", derivation);
            verdict = health.Verdict;

            var weight = ((DenseLayer<float>)model.Network.Layers[0]).Weight;
            Console.WriteLine(weight);        // Tensor[16×4] and the numbers
        });
        Assert.Contains("classification 4-16:relu:drop0.1:ln-3 (163 parameters)", printed);
        Assert.Contains("epoch 1: loss ", printed);
        Assert.Contains("classes setosa, versicolor, virginica", printed);
        Assert.Contains(verdict, printed);
        Assert.Contains("W: Tensor[16×4]\n[[", printed.ReplaceLineEndings("\n"));
    }
}
