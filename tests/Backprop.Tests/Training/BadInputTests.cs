using System.Buffers.Binary;
using System.IO.Compression;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Training;

/// <summary>Bad input to train / evaluate / predict: exit code 2, one line on stderr, no stack trace, no output file.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    private CliRunner.Result Train(params string[] args)
    {
        string output = _tmp.File("out.safetensors");
        var r = CliRunner.Run(["train", .. args, "--out", output, "--quiet"]);
        Assert.False(File.Exists(output), "a failed run wrote a model");
        return r;
    }

    [Theory]
    [InlineData("--batch 0", "--batch 0")]
    [InlineData("--batch -3", "--batch -3")]
    [InlineData("--epochs 0", "--epochs 0")]
    [InlineData("--lr -1", "--lr -1")]
    [InlineData("--lr 0", "--lr 0")]
    [InlineData("--lr NaN", "--lr")]
    [InlineData("--optimizer lbfgs", "lbfgs")]
    [InlineData("--activation swish", "swish")]
    [InlineData("--init orthogonal", "orthogonal")]
    [InlineData("--schedule linear", "linear")]
    [InlineData("--threads -2", "--threads")]
    [InlineData("--clip -1", "--clip")]
    [InlineData("--dtype float16", "float16")]
    [InlineData("--layers 4,abc,3", "'abc'")]
    [InlineData("--layers 4", "at least")]
    [InlineData("--layers 4,0,3", "'0'")]
    [InlineData("--layers 5,16,3", "4 features")]
    [InlineData("--layers 4,16,2", "3 classes")]
    [InlineData("--label no_such_column", "no_such_column")]
    [InlineData("--epochs many", "many")]
    public void Bad_train_options(string options, string mention) =>
        TrainingAssert.UsageError(Train(["--data", Iris, .. options.Split(' ')]), mention);

    [Fact]
    public void Layers_that_are_not_numbers_are_rejected_before_loading_mnist() =>
        TrainingAssert.UsageError(Train("--layers", "784,abc,10"), "'abc'");

    [Fact]
    public void Missing_data_file() =>
        TrainingAssert.UsageError(Train("--data", _tmp.File("nope.csv")), "nope.csv");

    [Fact]
    public void Ragged_csv()
    {
        File.WriteAllText(_tmp.File("ragged.csv"), "a,b,label\n1,2,x\n3,y\n4,5,x\n");
        TrainingAssert.UsageError(Train("--data", _tmp.File("ragged.csv")), "row 3");
    }

    [Fact]
    public void Non_numeric_csv()
    {
        File.WriteAllText(_tmp.File("text.csv"), "a,b,label\n1,2,x\n3,abc,y\n4,5,x\n");
        TrainingAssert.UsageError(Train("--data", _tmp.File("text.csv")), "'abc'");
    }

    [Fact]
    public void Header_only_csv()
    {
        File.WriteAllText(_tmp.File("empty.csv"), "a,b,label\n");
        TrainingAssert.UsageError(Train("--data", _tmp.File("empty.csv")));
    }

    [Fact]
    public void Truncated_mnist_files()
    {
        string dir = Directory.CreateDirectory(_tmp.File("mnist-truncated")).FullName;
        foreach (var f in Directory.GetFiles(CliRunner.DataPath("mnist")))
        {
            var bytes = File.ReadAllBytes(f);
            File.WriteAllBytes(Path.Combine(dir, Path.GetFileName(f)), bytes[..Math.Min(bytes.Length, 3000)]);
        }
        TrainingAssert.UsageError(Train("--data", dir, "--epochs", "1"));
    }

    // ---- small hand-made IDX directories (2×2 images) ----

    private static byte[] Images(int count, int rows = 2, int cols = 2, uint magic = 0x00000803, int? pixelBytes = null)
    {
        var b = new byte[16 + (pixelBytes ?? count * rows * cols)];
        BinaryPrimitives.WriteUInt32BigEndian(b, magic);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(12), cols);
        for (int i = 16; i < b.Length; i++) b[i] = (byte)(i * 37);
        return b;
    }

    private static byte[] Labels(int count, uint magic = 0x00000801, int? labelBytes = null)
    {
        var b = new byte[8 + (labelBytes ?? count)];
        BinaryPrimitives.WriteUInt32BigEndian(b, magic);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), count);
        for (int i = 8; i < b.Length; i++) b[i] = (byte)(i % 10);
        return b;
    }

    private string IdxDir(string name, byte[] trainImages, byte[] trainLabels, byte[] testImages, byte[] testLabels, bool gzip = false)
    {
        string dir = Directory.CreateDirectory(_tmp.File(name)).FullName;
        void Write(string file, byte[] data)
        {
            if (!gzip) { File.WriteAllBytes(Path.Combine(dir, file), data); return; }
            using var fs = File.Create(Path.Combine(dir, file + ".gz"));
            using var gz = new GZipStream(fs, CompressionLevel.Fastest);
            gz.Write(data);
        }
        Write("train-images-idx3-ubyte", trainImages);
        Write("train-labels-idx1-ubyte", trainLabels);
        Write("t10k-images-idx3-ubyte", testImages);
        Write("t10k-labels-idx1-ubyte", testLabels);
        return dir;
    }

    [Fact]
    public void A_well_formed_tiny_idx_directory_trains()
    {
        // the control for the corrupt variants below: the same files, intact, are accepted
        string dir = IdxDir("ok", Images(40), Labels(40), Images(10), Labels(10), gzip: true);
        var r = CliRunner.Run("train", "--data", dir, "--layers", "4,8,10", "--epochs", "1", "--out", _tmp.File("ok.safetensors"), "--quiet", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    [Fact]
    public void Idx_with_a_wrong_magic_number() =>
        TrainingAssert.UsageError(Train("--data", IdxDir("magic", Images(40, magic: 0x00000801), Labels(40), Images(10), Labels(10)), "--layers", "4,8,10"), "magic");

    [Fact]
    public void Idx_labels_with_a_wrong_magic_number() =>
        TrainingAssert.UsageError(Train("--data", IdxDir("magic-labels", Images(40), Labels(40), Images(10), Labels(10, magic: 0x00000803)), "--layers", "4,8,10"), "magic");

    [Fact]
    public void Idx_images_shorter_than_the_header_claims() =>
        TrainingAssert.UsageError(Train("--data", IdxDir("short", Images(40, pixelBytes: 100), Labels(40), Images(10), Labels(10)), "--layers", "4,8,10"));

    [Fact]
    public void Idx_labels_and_images_disagree_on_the_count() =>
        TrainingAssert.UsageError(Train("--data", IdxDir("count", Images(40), Labels(39), Images(10), Labels(10)), "--layers", "4,8,10"));

    [Fact]
    public void Idx_file_cut_inside_the_header() =>
        TrainingAssert.UsageError(Train("--data", IdxDir("header", Images(40)[..10], Labels(40), Images(10), Labels(10), gzip: true), "--layers", "4,8,10"));

    [Fact]
    public void Idx_gzip_stream_that_is_cut_short()
    {
        string dir = IdxDir("gz", Images(400, 8, 8), Labels(400), Images(10, 8, 8), Labels(10), gzip: true);
        string f = Path.Combine(dir, "train-images-idx3-ubyte.gz");
        var bytes = File.ReadAllBytes(f);
        File.WriteAllBytes(f, bytes[..(bytes.Length / 2)]);
        TrainingAssert.UsageError(Train("--data", dir, "--layers", "64,8,10"));
    }

    // ---- evaluate and predict ----

    public static TheoryData<string> ModelCommands() => new() { "evaluate", "predict" };

    [Theory]
    [MemberData(nameof(ModelCommands))]
    public void Missing_model_file(string command) =>
        TrainingAssert.UsageError(CliRunner.Run(command, "--model", _tmp.File("missing.safetensors"), "--data", Iris), "missing.safetensors");

    [Theory]
    [MemberData(nameof(ModelCommands))]
    public void A_safetensors_file_that_is_not_a_backprop_model(string command) =>
        TrainingAssert.UsageError(CliRunner.Run(command, "--model", CliRunner.DataPath("torch-models", "mlp-0.safetensors"), "--data", Iris), "not a backprop model");

    [Theory]
    [MemberData(nameof(ModelCommands))]
    public void A_truncated_model_file(string command)
    {
        string model = TrainIris("trunc");
        var bytes = File.ReadAllBytes(model);
        File.WriteAllBytes(model, bytes[..(bytes.Length - 10)]);
        TrainingAssert.UsageError(CliRunner.Run(command, "--model", model, "--data", Iris));
    }

    [Theory]
    [MemberData(nameof(ModelCommands))]
    public void Data_of_another_width_or_with_unknown_labels(string command)
    {
        string model = TrainIris("width");
        File.WriteAllText(_tmp.File("narrow.csv"), "a,b,label\n1,2,setosa\n3,4,virginica\n");
        TrainingAssert.UsageError(CliRunner.Run(command, "--model", model, "--data", _tmp.File("narrow.csv")), "features");
        if (command == "evaluate")
        {
            // another data set: its columns are not the model's features (the model records their names)
            TrainingAssert.UsageError(CliRunner.Run(command, "--model", model, "--data", CliRunner.DataPath("tabular", "wine.csv")), "no feature columns 'sepal_length_(cm)'");
            // the model's features, with a label the model does not know
            string header = File.ReadLines(Iris).First();
            File.WriteAllText(_tmp.File("unknown.csv"), $"{header}\n5.1,3.5,1.4,0.2,class_0\n");
            TrainingAssert.UsageError(CliRunner.Run(command, "--model", model, "--data", _tmp.File("unknown.csv")), "class_0");
        }
        TrainingAssert.UsageError(CliRunner.Run(command, "--model", model, "--data", _tmp.File("none.csv")), "none.csv");
    }

    [Fact]
    public void Predict_limit_must_be_positive() =>
        TrainingAssert.UsageError(CliRunner.Run("predict", "--model", TrainIris("limit"), "--data", Iris, "--limit", "0"), "--limit");

    private string TrainIris(string name)
    {
        string model = _tmp.File(name + ".safetensors");
        var r = CliRunner.Run("train", "--data", Iris, "--epochs", "1", "--out", model, "--quiet");
        Assert.True(r.ExitCode == 0, r.Stderr);
        return model;
    }
}
