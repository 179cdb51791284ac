using Backprop.Data;
using Backprop.Explain;
using Backprop.Models;
using Backprop.Tests.Cli;
using Backprop.Training;
using Microsoft.ML.OnnxRuntime;
using TempDir = Backprop.Tests.Training.TempDir;
using FloatModel = Backprop.Models.Model<float>;

namespace Backprop.Tests.Models;

/// <summary>The high-level API: Fit on arrays, spans and files as the CLI trains, cancellation and resume, concurrent Predict, files, interop, explain.</summary>
public sealed class ModelTests
{
    private static readonly string Iris = CliRunner.DataPath("tabular", "iris.csv");

    /// <summary>The iris table split as the CLI splits it for a seed (raw features, not standardised).</summary>
    private static DataSplitResult IrisSplit(int seed)
    {
        var csv = CsvDataset.LoadFor(Iris, new CsvTargets());
        return DataSplit.Split(csv.Data, 0.15, 0.2, seed, stratified: true);
    }

    private static float[,] Matrix(LabeledData d)
    {
        var m = new float[d.Count, d.FeatureCount];
        for (int i = 0; i < d.Count; i++)
            for (int j = 0; j < d.FeatureCount; j++) m[i, j] = d.Features[i * d.FeatureCount + j];
        return m;
    }

    private static float[][] Jagged(LabeledData d) => [.. Enumerable.Range(0, d.Count).Select(i => d.Row(i).ToArray())];

    private static FloatModel IrisModel(int seed = 0) => Model.Build().Input(4).Dense(16, "relu").Output(3).Seed(seed).ForClassification();

    private static float[] Parameters(FloatModel m) => [.. m.Network.Parameters().SelectMany(p => p.Value.Data.ToArray())];

    private static FitOptions Options(int seed, int epochs = 30) => new()
    {
        Epochs = epochs, BatchSize = 16, LearningRate = 0.01, Schedule = "cosine", Seed = seed, Threads = 1,
    };

    [Fact]
    public void Fit_on_arrays_and_on_the_file_trains_the_parameters_the_cli_trains()
    {
        using var tmp = new TempDir();
        const int seed = 3;
        var cli = CliRunner.Run("train", "--data", Iris, "--layers", "4,16,3", "--epochs", "30", "--batch", "16", "--lr", "0.01", "--schedule", "cosine",
            "--patience", "0", "--seed", seed.ToString(), "--threads", "1", "--out", tmp.File("cli.safetensors"), "--json", "--quiet");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var cliModel = Model.Load(tmp.File("cli.safetensors"));
        double cliAccuracy = cli.Json.GetProperty("test_accuracy").GetDouble();

        // arrays: the CLI's training rows, raw; the model standardises them with their own statistics, as the CLI does
        var split = IrisSplit(seed);
        var fromArrays = IrisModel(seed);
        fromArrays.Fit(Matrix(split.Train), split.Train.Labels, Options(seed));
        Assert.Equal(Parameters(cliModel), Parameters(fromArrays));
        Assert.Equal(cliModel.Standardizer!.Mean, fromArrays.Standardizer!.Mean);
        Assert.Equal(cliAccuracy, fromArrays.Evaluate(Matrix(split.Test), split.Test.Labels)["accuracy"], 12);

        // the file: the CLI's split, the class names and the test metrics
        var fromFile = IrisModel(seed);
        var result = fromFile.Fit(Iris, Options(seed));
        Assert.Equal(Parameters(cliModel), Parameters(fromFile));
        Assert.Equal(cliAccuracy, result.TestAccuracy, 12);
        Assert.Equal(cliModel.LabelNames, fromFile.LabelNames);
        Assert.Equal(30, result.History.Count);
    }

    /// <summary>An MNIST folder of the first <paramref name="train"/> and <paramref name="test"/> images of the shipped one (IDX, gzip).</summary>
    private static string SmallMnist(TempDir tmp, int train, int test)
    {
        string dir = tmp.File("mnist-small");
        Directory.CreateDirectory(dir);
        foreach (var (set, count) in new[] { ("train", train), ("t10k", test) })
        {
            Prefix($"{set}-images-idx3-ubyte.gz", 16, count * 28 * 28, count);
            Prefix($"{set}-labels-idx1-ubyte.gz", 8, count, count);
        }
        return dir;

        void Prefix(string file, int header, int bytes, int count)
        {
            using var input = new System.IO.Compression.GZipStream(File.OpenRead(CliRunner.DataPath("mnist", file)), System.IO.Compression.CompressionMode.Decompress);
            var head = new byte[header + bytes];
            input.ReadExactly(head);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(head.AsSpan(4), count);   // the item count after the magic number
            using var output = new System.IO.Compression.GZipStream(File.Create(Path.Combine(dir, file)), System.IO.Compression.CompressionLevel.Fastest);
            output.Write(head);
        }
    }

    [Fact]
    public void Fit_on_an_mnist_folder_trains_the_parameters_the_cli_trains()
    {
        using var tmp = new TempDir();
        string mnist = SmallMnist(tmp, 600, 100);
        const int seed = 5;
        var cli = CliRunner.Run("train", "--data", mnist, "--layers", "784,32,10", "--epochs", "3", "--batch", "32", "--lr", "0.01",
            "--schedule", "cosine", "--patience", "0", "--seed", seed.ToString(), "--threads", "1", "--out", tmp.File("cli.safetensors"), "--json", "--quiet");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var cliModel = Model.Load(tmp.File("cli.safetensors"));

        var model = Model.Build().Input(784).Dense(32, "relu").Output(10).Seed(seed).ForClassification();
        var result = model.Fit(mnist, Options(seed, epochs: 3) with { BatchSize = 32 });
        Assert.Equal(Parameters(cliModel), Parameters(model));
        Assert.Equal(cli.Json.GetProperty("test_accuracy").GetDouble(), result.TestAccuracy, 12);
        Assert.True(result.TestAccuracy > 0.6, $"test accuracy {result.TestAccuracy} after 3 epochs on 600 images");
        Assert.Equal(3, result.History.Count);
    }

    [Fact]
    public void Spans_jagged_rows_and_matrices_train_and_predict_alike()
    {
        var split = IrisSplit(1);
        var options = Options(1, epochs: 5);
        var a = IrisModel();
        a.Fit(Matrix(split.Train), split.Train.Labels, options);
        var b = IrisModel();
        b.Fit(Jagged(split.Train), split.Train.Labels, options);
        var c = IrisModel();
        c.Fit(split.Train.Features.AsSpan(), split.Train.Labels.AsSpan(), options);
        Assert.Equal(Parameters(a), Parameters(b));
        Assert.Equal(Parameters(a), Parameters(c));
        Assert.NotEqual(Parameters(IrisModel()), Parameters(a));

        var test = split.Test;
        var probabilities = a.Predict(Matrix(test));
        var flat = new float[test.Count * 3];
        c.Predict(test.Features, flat);
        for (int i = 0; i < test.Count; i++)
        {
            var row = a.Predict(test.Row(i));
            for (int j = 0; j < 3; j++)
            {
                // one row and a batch go through GEMMs of other shapes: equal to rounding, not bit for bit
                Assert.Equal(probabilities[i, j], row[j], 1e-6);
                Assert.Equal(probabilities[i, j], flat[i * 3 + j]);
            }
            Assert.Equal(1.0, row.Sum(), 5);
            Assert.Equal(Array.IndexOf(row, row.Max()), a.PredictClass(test.Row(i)));
        }
        var fromSpans = a.Evaluate(test.Features, test.Labels);
        var fromMatrix = a.Evaluate(Matrix(test), test.Labels);
        Assert.Equal(fromMatrix.Loss, fromSpans.Loss);
        Assert.Equal(fromMatrix.Metrics, fromSpans.Metrics);
    }

    [Fact]
    public void A_cancelled_fit_leaves_the_model_as_it_was_and_a_checkpoint_that_resumes_to_the_uninterrupted_fit()
    {
        using var tmp = new TempDir();
        var split = IrisSplit(2);
        var x = Matrix(split.Train);
        var y = split.Train.Labels;
        var whole = IrisModel();
        whole.Fit(x, y, Options(2, epochs: 8) with { ValidationSplit = 0.2 });

        string ck = tmp.File("fit.ckpt");
        var model = IrisModel();
        var before = Parameters(model);
        using var cancel = new CancellationTokenSource();
        var epochs = new List<int>();
        var options = Options(2, epochs: 8) with
        {
            ValidationSplit = 0.2, CheckpointPath = ck,
            OnEpoch = e => { epochs.Add(e.Result.Epoch); if (e.Result.Epoch == 3) cancel.Cancel(); },
        };
        Assert.ThrowsAny<OperationCanceledException>(() => model.Fit(x, y, options, cancel.Token));
        Assert.Equal([1, 2, 3], epochs);
        Assert.Equal(before, Parameters(model));
        Assert.Null(model.Standardizer);
        Assert.Equal(3, Checkpoint.Load<float>(ck).Epoch);

        var resumed = model.Fit(x, y, options with { ResumeFrom = ck, OnEpoch = e => epochs.Add(e.Result.Epoch) });
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], epochs);
        Assert.Equal(8, resumed.History.Count);
        Assert.Equal(Parameters(whole), Parameters(model));
        Assert.Equal(8, Checkpoint.Load<float>(ck).Epoch);
    }

    [Fact]
    public void A_cancelled_fit_with_dropout_resumes_to_the_uninterrupted_fit()
    {
        // the masks of step k must not depend on how many tapes were recorded before it (each recording ran a forward
        // pass, which drew a mask): a batch of 20 leaves a shorter last batch, whose tape is recorded once more
        using var tmp = new TempDir();
        var split = IrisSplit(1);
        var x = Matrix(split.Train);
        var y = split.Train.Labels;
        Assert.NotEqual(0, y.Length % 20);
        FloatModel Build() => Model.Build().Input(4).Dense(16, "relu").Dropout(0.2).Output(3).Seed(1).ForClassification();
        var whole = Build();
        whole.Fit(x, y, Options(1, epochs: 6) with { BatchSize = 20 });

        string ck = tmp.File("drop.ckpt");
        var model = Build();
        using var cancel = new CancellationTokenSource();
        var options = Options(1, epochs: 6) with { BatchSize = 20, CheckpointPath = ck };
        Assert.ThrowsAny<OperationCanceledException>(() =>
            model.Fit(x, y, options with { OnEpoch = e => { if (e.Result.Epoch == 3) cancel.Cancel(); } }, cancel.Token));
        model.Fit(x, y, options with { ResumeFrom = ck });
        Assert.Equal(Parameters(whole), Parameters(model));
    }

    [Fact]
    public void A_cancelled_fit_on_a_file_resumes_with_the_cli()
    {
        using var tmp = new TempDir();
        var whole = IrisModel(4);
        whole.Fit(Iris, Options(4, epochs: 6));

        string ck = tmp.File("iris.ckpt");
        using var cancel = new CancellationTokenSource();
        var model = IrisModel(4);
        Assert.ThrowsAny<OperationCanceledException>(() => model.Fit(Iris, Options(4, epochs: 6) with
        {
            CheckpointPath = ck, OnEpoch = e => { if (e.Result.Epoch == 2) cancel.Cancel(); },
        }, cancel.Token));
        var cli = CliRunner.Run("train", "--resume", ck, "--out", tmp.File("resumed.safetensors"), "--threads", "1", "--json", "--quiet");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        Assert.Equal(6, cli.Json.GetProperty("epochs").GetInt32());
        Assert.Equal(Parameters(whole), Parameters(Model.Load(tmp.File("resumed.safetensors"))));
    }

    [Fact]
    public void Predict_from_many_threads_gives_the_sequential_answers()
    {
        var split = IrisSplit(0);
        var model = Model.Build().Input(4).Dense(32, "tanh").LayerNorm().Dense(16, "relu").Dropout(0.2).Output(3).ForClassification();
        model.Fit(Matrix(split.Train), split.Train.Labels, Options(0, epochs: 5));
        var all = CsvDataset.LoadFor(Iris, new CsvTargets()).Data;
        var batch = Matrix(all);
        var expectedBatch = model.Predict(batch);
        var expectedRows = Enumerable.Range(0, all.Count).Select(i => model.Predict(all.Row(i))).ToArray();
        var expectedClasses = model.PredictClass(batch);

        int failures = 0;
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 16 }, k =>
        {
            var rng = new Random(k);
            for (int round = 0; round < 20; round++)
            {
                int i = rng.Next(all.Count);
                if (!model.Predict(all.Row(i)).SequenceEqual(expectedRows[i])) Interlocked.Increment(ref failures);
                if (model.PredictClass(all.Row(i)) != expectedClasses[i]) Interlocked.Increment(ref failures);
                if (round % 5 == 0)
                {
                    var got = model.Predict(batch);
                    for (int r = 0; r < all.Count; r++)
                        for (int j = 0; j < 3; j++)
                            if (got[r, j] != expectedBatch[r, j]) { Interlocked.Increment(ref failures); r = all.Count; break; }
                }
            }
        });
        Assert.Equal(0, failures);
    }

    [Fact]
    public async Task Predictions_during_a_fit_see_the_model_before_or_after_it()
    {
        var split = IrisSplit(0);
        var model = IrisModel();
        var batch = Matrix(split.Test);
        var before = model.Predict(batch);
        var seen = new System.Collections.Concurrent.ConcurrentBag<float[,]>();
        int epochsDone = 0;
        var fit = Task.Run(() => model.Fit(Matrix(split.Train), split.Train.Labels, Options(0, epochs: 40) with
        {
            OnEpoch = _ => Interlocked.Increment(ref epochsDone),
        }));
        // predict while the fit runs, from several threads
        Parallel.For(0, 4, _ =>
        {
            while (!fit.IsCompleted) seen.Add(model.Predict(batch));
        });
        await fit;
        var after = model.Predict(batch);
        Assert.Equal(40, epochsDone);
        Assert.NotEqual(before, after);
        Assert.All(seen, p => Assert.True(p.Cast<float>().SequenceEqual(before.Cast<float>()) || p.Cast<float>().SequenceEqual(after.Cast<float>()),
            "a prediction during the fit saw a half-trained model"));
    }

    [Fact]
    public void Save_and_load_round_trip_and_the_cli_evaluates_the_file()
    {
        using var tmp = new TempDir();
        var model = IrisModel();
        model.Fit(Iris, Options(0, epochs: 20));
        string path = tmp.File("iris.safetensors");
        model.Save(path);
        var loaded = Model.Load(path);
        Assert.Equal(Parameters(model), Parameters(loaded));
        Assert.Equal(model.LabelNames, loaded.LabelNames);
        var all = CsvDataset.LoadFor(Iris, new CsvTargets()).Data;
        Assert.Equal(model.Predict(Matrix(all)), loaded.Predict(Matrix(all)));

        var cli = CliRunner.Run("evaluate", "--model", path, "--data", Iris, "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var evaluation = loaded.Evaluate(Iris);
        Assert.Equal(150, evaluation.Rows);
        Assert.Equal(cli.Json.GetProperty("accuracy").GetDouble(), evaluation["accuracy"], 12);
        Assert.Equal(cli.Json.GetProperty("loss").GetDouble(), evaluation.Loss, 6);

        // a model fitted on arrays, its classes named as in the file: the CLI evaluates it on the file
        var split = IrisSplit(0);
        var named = Model.Build().Input(4).Dense(16, "relu").Output("setosa", "versicolor", "virginica").ForClassification();
        named.Fit(Matrix(split.Train), split.Train.Labels, Options(0, epochs: 20));
        named.Save(path);
        var fromArrays = CliRunner.Run("evaluate", "--model", path, "--data", Iris, "--json");
        Assert.True(fromArrays.ExitCode == 0, fromArrays.Stderr);
        Assert.Equal(named.Evaluate(Matrix(all), all.Labels)["accuracy"], fromArrays.Json.GetProperty("accuracy").GetDouble(), 12);
    }

    [Fact]
    public void A_model_fitted_on_a_csv_keeps_its_feature_names_through_save_and_load_and_evaluates_columns_by_name()
    {
        using var tmp = new TempDir();
        var model = IrisModel();
        Assert.Null(model.FeatureNames);
        model.Fit(Iris, Options(0, epochs: 5));
        var header = File.ReadLines(Iris).First().Split(',');
        Assert.Equal(header[..4], model.FeatureNames);
        string path = tmp.File("named.safetensors");
        model.Save(path);
        var loaded = Model.Load(path);
        Assert.Equal(header[..4], loaded.FeatureNames);

        string reordered = tmp.File("reordered.csv");
        int[] order = [2, 4, 0, 3, 1];
        File.WriteAllLines(reordered, File.ReadLines(Iris).Where(l => l.Length > 0).Select(l => string.Join(",", order.Select(j => l.Split(',')[j]))));
        var expected = loaded.Evaluate(Iris);
        var got = loaded.Evaluate(reordered);
        Assert.Equal(expected.Loss, got.Loss);
        Assert.Equal(expected["accuracy"], got["accuracy"]);
    }

    [Fact]
    public void A_regression_model_saves_what_the_cli_reads()
    {
        using var tmp = new TempDir();
        var rng = new Random(5);
        var x = new float[200, 3];
        var t = new float[200, 1];
        for (int i = 0; i < 200; i++)
        {
            for (int j = 0; j < 3; j++) x[i, j] = (float)(rng.NextDouble() * 10);
            t[i, 0] = 3 * x[i, 0] - 2 * x[i, 1] + 100;
        }
        var model = Model.Build().Input(3).Dense(16, "tanh").Output("y").ForRegression();
        model.Fit(x, t, new FitOptions { Epochs = 60, LearningRate = 0.01, Threads = 1 });
        var fit = model.Evaluate(x, t);
        Assert.True(fit["r2"] > 0.9, $"R² {fit["r2"]}");
        var predicted = model.Predict(x);
        Assert.InRange(predicted[0, 0], t[0, 0] - 10 * fit["rmse"], t[0, 0] + 10 * fit["rmse"]);   // in the targets' units

        string path = tmp.File("reg.safetensors");
        model.Save(path);
        string csv = tmp.File("reg.csv");
        File.WriteAllLines(csv, ["a,b,c,y", .. Enumerable.Range(0, 200).Select(i => string.Join(",", new[] { x[i, 0], x[i, 1], x[i, 2], t[i, 0] }.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))))]);
        var cli = CliRunner.Run("evaluate", "--model", path, "--data", csv, "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        Assert.Equal(fit["r2"], cli.Json.GetProperty("r2").GetDouble(), 4);
        Assert.Equal(fit["r2"], Model.Load(path).Evaluate(csv)["r2"], 4);
    }

    [Fact]
    public void A_multilabel_model_learns_independent_labels_and_a_float64_model_trains_and_saves()
    {
        var rng = new Random(9);
        var x = new float[300, 2];
        var t = new float[300, 2];
        for (int i = 0; i < 300; i++)
        {
            x[i, 0] = (float)(rng.NextDouble() * 2 - 1);
            x[i, 1] = (float)(rng.NextDouble() * 2 - 1);
            t[i, 0] = x[i, 0] > 0 ? 1 : 0;
            t[i, 1] = x[i, 1] > 0 ? 1 : 0;
        }
        var multi = Model.Build().Input(2).Dense(8, "tanh").Output("right", "up").ForMultiLabel();
        multi.Fit(x, t, new FitOptions { Epochs = 60, LearningRate = 0.02, Threads = 1 });
        Assert.True(multi.Evaluate(x, t)["subset_accuracy"] > 0.9);
        var p = multi.Predict([0.8f, -0.8f]);
        Assert.True(p[0] > 0.5 && p[1] < 0.5, $"probabilities {p[0]}, {p[1]}");
        t[0, 0] = 0.5f;
        Assert.Equal("targets", Assert.Throws<ArgumentException>(() => multi.Fit(x, t)).ParamName);

        using var tmp = new TempDir();
        var split = IrisSplit(0);
        var wide = Model.Build().Input(4).Dense(16, "relu").Output(3).ForClassification<double>();
        var narrow = IrisModel();
        wide.Fit(Matrix(split.Train), split.Train.Labels, Options(0, epochs: 10));
        narrow.Fit(Matrix(split.Train), split.Train.Labels, Options(0, epochs: 10));
        var w = wide.Network.Parameters().SelectMany(q => q.Value.Data.ToArray()).ToArray();
        var n = Parameters(narrow);
        Assert.Equal(n.Length, w.Length);
        Assert.True(w.Zip(n).Max(z => Math.Abs(z.First - z.Second)) < 1e-3, "float64 and float32 fits of the same run agree to float32 rounding");
        wide.Save(tmp.File("wide.safetensors"));
        var loaded = Backprop.Models.Model<double>.Load(tmp.File("wide.safetensors"));
        Assert.Equal(wide.Predict(Matrix(split.Test)), loaded.Predict(Matrix(split.Test)));
    }

    /// <summary>A 4-16:relu-3 classifier with random weights and a standardisation whose std values divide and multiply by their reciprocal differently.</summary>
    private static FloatModel StandardizedModel(int seed)
    {
        var net = Initializers.Mlp<float>([4, 16, 3], "relu", seed, Backprop.Ops.InitKind.HeUniform);
        var rng = new Random(seed);
        float[] mean = [.. Enumerable.Range(0, 4).Select(_ => (float)(rng.NextDouble() * 4 + 1))];
        float[] std = [.. Enumerable.Range(0, 4).Select(_ => (float)(rng.NextDouble() * 2 + 0.3))];
        return new FloatModel(net, TrainingTask.Classification, ["setosa", "versicolor", "virginica"], new Standardizer(mean, std));
    }

    [Fact]
    public void Predictions_are_the_cli_predict_outputs_bit_for_bit()
    {
        // 1001 rows: the CLI predicts in passes of about 1000 rows, the model all at once; and the model once divided
        // by std where training and the CLI multiply by 1/std (one ulp apart)
        using var tmp = new TempDir();
        var model = StandardizedModel(7);
        string path = tmp.File("m.safetensors");
        model.Save(path);
        var rng = new Random(8);
        int rows = 1001;
        var x = new float[rows * 4];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 8);
        string csv = tmp.File("rows.csv");
        File.WriteAllLines(csv, ["a,b,c,d", .. Enumerable.Range(0, rows).Select(i => string.Join(",", x.AsSpan(i * 4, 4).ToArray().Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))))]);
        var cli = CliRunner.Run("predict", "--model", path, "--data", csv, "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var expected = cli.Json.GetProperty("outputs").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetSingle())).ToArray();
        var raw = new float[rows * 3];
        model.PredictRaw(x, raw);
        Assert.Equal(expected.Length, raw.Length);
        for (int i = 0; i < raw.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(raw[i]), $"output {i}: the model gives {raw[i]:R}, the CLI {expected[i]:R}");
        var loaded = Model.Load(path);
        var again = new float[rows * 3];
        loaded.PredictRaw(x, again);
        Assert.Equal(raw, again);
        var classes = loaded.PredictClass(ToMatrix(x, 4));
        var names = cli.Json.GetProperty("predictions").EnumerateArray().Select(e => e.GetString()).ToArray();
        Assert.Equal(names, classes.Select(c => loaded.LabelNames[c]).ToArray());
    }

    private static float[,] ToMatrix(float[] flat, int cols)
    {
        var m = new float[flat.Length / cols, cols];
        for (int i = 0; i < flat.Length; i++) m[i / cols, i % cols] = flat[i];
        return m;
    }

    [Fact]
    public void A_warm_prediction_allocates_nothing()
    {
        var model = StandardizedModel(3);
        var x = new float[32 * 4];
        for (int i = 0; i < x.Length; i++) x[i] = i * 0.1f;
        var outputs = new float[32 * 3];
        void Calls()
        {
            model.PredictRaw(x, outputs);
            model.Predict(x, outputs);
            model.PredictClass(x.AsSpan(0, 4));
        }
        Calls();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) Calls();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void A_warm_class_prediction_of_many_classes_allocates_nothing()
    {
        // PredictClass(row) took a new float[Outputs] for more than 256 classes: 1,224 bytes a call for 300
        var model = Model.Build().Input(4).Dense(8, "relu").Output(300).ForClassification();
        float[] row = [1, 2, 3, 4];
        int expected = model.PredictClass(row);
        var raw = new float[300];
        model.PredictRaw(row, raw);
        Assert.Equal(Array.IndexOf(raw, raw.Max()), expected);
        var classes = new int[10];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < classes.Length; i++) classes[i] = model.PredictClass(row);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.All(classes, c => Assert.Equal(expected, c));
    }

    [Fact]
    public void Predictions_see_a_change_made_through_the_network()
    {
        var model = StandardizedModel(4);
        float[] row = [1, 2, 3, 4];
        var before = model.Predict(row);
        var weight = ((Backprop.Nn.DenseLayer<float>)model.Network.Layers[1]).Weight.Value.Span;
        for (int i = 0; i < weight.Length; i++) weight[i] = -weight[i];
        var after = model.Predict(row);
        Assert.NotEqual(before, after);
        var x = (float[])row.Clone();
        model.Standardizer!.Apply(x);
        var logits = model.Network.Predict(new Tensor<float>(x, 1, 4)).Span.ToArray();
        var raw = new float[3];
        model.PredictRaw(row, raw);
        Assert.Equal(logits, raw);
    }

    [Fact]
    public void An_empty_batch_predicts_no_rows()
    {
        var model = StandardizedModel(5);
        var none = new float[0, 4];
        var p = model.Predict(none);
        Assert.Equal(0, p.GetLength(0));
        Assert.Equal(3, p.GetLength(1));
        Assert.Empty(model.PredictClass(none));
        model.PredictRaw(ReadOnlySpan<float>.Empty, Span<float>.Empty);
        model.Predict(ReadOnlySpan<float>.Empty, Span<float>.Empty);
        Assert.Throws<ArgumentException>(() => model.Predict(new float[0, 5]));   // still the model's width
    }

    [Fact]
    public void A_single_row_of_the_wrong_width_is_refused_not_answered()
    {
        var model = StandardizedModel(5);
        // an empty row gave [0, 0, 0] and class 0 ("0"); two rows' values in one row named the internal 'outputs'
        foreach (float[] row in new[] { Array.Empty<float>(), new float[8], new float[3] })
        {
            Assert.Equal("row", Assert.Throws<ArgumentException>(() => model.Predict(row)).ParamName);
            Assert.Equal("row", Assert.Throws<ArgumentException>(() => model.PredictClass(row)).ParamName);
            var e = Assert.Throws<ArgumentException>(() => model.PredictLabel(row));
            Assert.Equal("row", e.ParamName);
            Assert.Contains($"{row.Length} features but the model takes 4", e.Message);
        }
    }

    [Fact]
    public void Evaluate_on_no_rows_is_refused_not_scored()
    {
        // a classifier scored 0 rows as loss 0 and accuracy 0, a regression as R² 1
        var classifier = IrisModel();
        Assert.Equal("features", Assert.Throws<ArgumentException>(() => classifier.Evaluate(new float[0, 4], [])).ParamName);
        var regression = Model.Build().Input(4).Output(1).ForRegression();
        Assert.Equal("features", Assert.Throws<ArgumentException>(() => regression.Evaluate(new float[0, 4], new float[0, 1])).ParamName);
    }

    [Fact]
    public void A_negative_thread_count_is_refused()
    {
        // Threads = -3 trained on all cores, as 0 does
        var model = IrisModel();
        var e = Assert.Throws<ArgumentException>(() => model.Fit(new float[10, 4], new int[10], new FitOptions { Threads = -3 }));
        Assert.Equal("options", e.ParamName);
        Assert.Contains("Threads -3", e.Message);
        // too many threads named the ComputeContext's parameter `threads`, which Fit does not have
        var many = Assert.Throws<ArgumentException>(() => model.Fit(new float[10, 4], new int[10], new FitOptions { Threads = 100_000 }));
        Assert.Equal("options", many.ParamName);
        Assert.Contains("Threads 100000", many.Message);
    }

    [Fact]
    public void Patience_without_validation_rows_is_refused_not_ignored()
    {
        // FitOptions.Patience "needs a validation split"; without one it was ignored: every epoch ran, no best weights kept
        var model = IrisModel();
        var e = Assert.Throws<ArgumentException>(() => model.Fit(new float[10, 4], new int[10], new FitOptions { Patience = 3 }));
        Assert.Equal("options", e.ParamName);
        Assert.Contains("Patience 3", e.Message);
        Assert.Throws<ArgumentException>(() => model.Fit(Iris, new FitOptions { Patience = 3, ValidationSplit = 0 }));
    }

    [Fact]
    public void Label_names_a_model_file_cannot_hold_are_refused_when_the_model_is_made()
    {
        // Save wrote them, and Load refused its own file ("element 1 is not a string", "names a class twice")
        Assert.Equal("names", Assert.Throws<ArgumentNullException>(() => Model.Build().Input(2).Output("a", null!)).ParamName);
        var twice = Assert.Throws<ArgumentException>(() => Model.Build().Input(2).Output("a", "a"));
        Assert.Equal("names", twice.ParamName);
        Assert.Contains("'a' twice", twice.Message);
        var network = IrisModel().Network;
        Assert.Equal("labelNames", Assert.Throws<ArgumentException>(() => new FloatModel(network, TrainingTask.Classification, ["x", "y", "x"])).ParamName);
    }

    [Fact]
    public void Explaining_a_classifier_on_target_values_says_so()
    {
        // it threw ArgumentNullException for 'labels', a parameter of the other overload
        var model = IrisModel();
        var e = Assert.Throws<ArgumentException>(() => model.Explain(new float[1, 4], new float[1, 3]));
        Assert.Equal("targets", e.ParamName);
        Assert.Contains("class indices", e.Message);
        Assert.Equal("targets", Assert.Throws<ArgumentException>(() => model.Diagnose(new float[1, 4], new float[1, 3])).ParamName);
    }

    [Fact]
    public void Bad_input_throws_the_exceptions_dotnet_users_expect()
    {
        var model = IrisModel();
        var before = Parameters(model);
        var x = new float[10, 4];
        var y = new int[10];
        Assert.Equal("labels", Assert.Throws<ArgumentException>(() => model.Fit(x, new int[9])).ParamName);
        Assert.Equal("features", Assert.Throws<ArgumentException>(() => model.Fit(new float[10, 5], y)).ParamName);
        x[3, 2] = float.NaN;
        Assert.Equal("features", Assert.Throws<ArgumentException>(() => model.Fit(x, y)).ParamName);
        x[3, 2] = 0;
        y[7] = 3;
        var outOfRange = Assert.Throws<ArgumentException>(() => model.Fit(x, y));
        Assert.Equal("labels", outOfRange.ParamName);
        Assert.Contains("labels[7] is 3", outOfRange.Message);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => model.Fit(new float[10, 4], new int[10], new FitOptions { Optimizer = "nope" })).ParamName);
        Assert.Equal(before, Parameters(model));
        Assert.Throws<ArgumentOutOfRangeException>(() => Model.Build().Input(4).Dense(0));
        Assert.Throws<ArgumentException>(() => Model.Build().Input(4).Dense(8, "nope"));

        using var tmp = new TempDir();
        string path = tmp.File("m.safetensors");
        model.Save(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.Throws<InvalidDataException>(() => Model.Load(path));
        File.WriteAllBytes(path, [.. bytes[..8], .. "{\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[16,4],\"data_offsets\":[0,999999999]}}"u8.ToArray()]);
        Assert.Throws<InvalidDataException>(() => Model.Load(path));
        Assert.Throws<FileNotFoundException>(() => Model.Load(tmp.File("missing.safetensors")));
    }

    [Fact]
    public void The_onnx_export_runs_in_onnx_runtime_with_the_model_outputs()
    {
        using var tmp = new TempDir();
        var split = IrisSplit(0);
        var model = Model.Build().Input(4).Dense(16, "relu").LayerNorm().Output(3).ForClassification();
        model.Fit(Matrix(split.Train), split.Train.Labels, Options(0, epochs: 5));
        string onnx = tmp.File("iris.onnx");
        model.ExportOnnx(onnx);

        var test = split.Test;
        var expected = new float[test.Count * 3];
        model.PredictRaw(test.Features, expected);
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(onnx, options);
        using var input = OrtValue.CreateTensorValueFromMemory(test.Features.ToArray(), [test.Count, 4]);
        using var run = new RunOptions();
        using var results = session.Run(run, ["input"], [input], ["output"]);
        var got = results[0].GetTensorDataAsSpan<float>().ToArray();
        Assert.Equal(expected.Length, got.Length);
        for (int k = 0; k < got.Length; k++) Assert.True(Math.Abs(got[k] - expected[k]) <= 1e-5 * Math.Max(1, Math.Abs(expected[k])), $"output {k}: {got[k]} vs {expected[k]}");
    }

    [Fact]
    public void ImportTorch_reproduces_pytorch_on_mnist()
    {
        var (activations, expected) = Backprop.Tests.Interop.InteropTestData.TorchReference(0);
        var model = Model.ImportTorch(CliRunner.DataPath("torch-models", "mlp-0.safetensors"), string.Join(",", activations[..^1]));
        Assert.Equal("784-16:tanh-10", model.Architecture);
        var x = Backprop.Tests.Interop.InteropTestData.MnistFirst64();
        var got = new float[64 * 10];
        model.PredictRaw(x.Data, got);
        Assert.True(Backprop.Tests.Interop.InteropTestData.MaxAbsDiff(got, expected.SelectMany(r => r).ToArray()) <= 1e-4);
        Assert.Equal("activations", Assert.Throws<ArgumentException>(() => Model.ImportTorch(CliRunner.DataPath("torch-models", "mlp-0.safetensors"), "relu,relu,relu")).ParamName);
        Assert.Throws<InvalidDataException>(() => Model.ImportTorch(CliRunner.DataPath("torch-models", "mlp-0.json"), "relu"));
    }

    [Fact]
    public void Explain_prints_the_derivation_and_diagnose_the_health_of_a_batch()
    {
        var split = IrisSplit(0);
        var model = IrisModel();
        model.Fit(Matrix(split.Train), split.Train.Labels, Options(0, epochs: 3));
        var batch = new float[4, 4];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) batch[i, j] = split.Test.Features[i * 4 + j];
        var labels = split.Test.Labels[..4];
        var before = Parameters(model);

        string text = model.Explain(batch, labels, "layers.0.weight");
        Assert.Contains("Forward pass", text);
        Assert.Contains("Backward pass", text);
        Assert.Contains("δ₂ = ∂L/∂z₂", text);
        Assert.Contains("∂L/∂W₁ = δ₁ᵀ·x", text);
        Assert.Contains("tape's own gradient: equal", text);
        Assert.Contains("finite-difference check", text);
        Assert.EndsWith("pass", text.TrimEnd());
        Assert.Contains("\\partial", model.Explain(batch, labels, "layers.1.bias", DerivationFormat.Latex));

        var health = model.Diagnose(batch, labels);
        Assert.Equal(2, health.Layers.Count);
        Assert.False(string.IsNullOrWhiteSpace(health.Verdict));
        Assert.Equal(before, Parameters(model));
        // an unknown gradient is the caller's wrt, named as such; a null one is refused, not taken as the default
        var unknown = Assert.Throws<Backprop.Problems.UnknownValueException>(() => model.Explain(batch, labels, "layers.9.weight"));
        Assert.Equal("wrt", unknown.ParamName);
        Assert.Contains("layers.9.weight", unknown.Message);
        Assert.Equal("wrt", Assert.Throws<ArgumentNullException>(() => model.Explain(batch, labels, null!)).ParamName);
    }
}
