using Backprop.IO;

namespace Backprop.Data;

/// <summary>
/// The MNIST training and test sets, loaded from the four IDX files of a directory
/// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,
/// each optionally gzipped with a .gz suffix). Pixels are scaled to [0, 1]; labels are 0–9.
/// </summary>
public sealed class MnistDataset
{
    /// <summary>The digits 0–9.</summary>
    public const int ClassCount = 10;
    /// <summary>The class names "0" to "9" (class i is digit i), a new array on each call.</summary>
    public static string[] LabelNames => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];   // a fresh array: a shared one could be written by any caller

    private MnistDataset(LabeledData train, LabeledData test, int rows, int cols)
    {
        Train = train;
        Test = test;
        Rows = rows;
        Cols = cols;
    }

    /// <summary>60,000 images for standard MNIST, flattened to Rows·Cols features.</summary>
    public LabeledData Train { get; }
    /// <summary>10,000 images for standard MNIST, flattened to Rows·Cols features.</summary>
    public LabeledData Test { get; }
    /// <summary>Image height in pixels, from the IDX header (28 for standard MNIST).</summary>
    public int Rows { get; }
    /// <summary>Image width in pixels, from the IDX header (28 for standard MNIST).</summary>
    public int Cols { get; }

    /// <summary>Loads the training and test sets from <paramref name="dir"/>.</summary>
    public static MnistDataset Load(string dir)
    {
        var (train, test) = Load(dir, All);
        return new MnistDataset(train[0], test.Data, test.Rows, test.Cols);
    }

    /// <summary>
    /// Loads the training set split in two at random, as <see cref="DataSplit.Split(LabeledData, double, int, bool)"/>
    /// splits <see cref="Train"/> (the same rows, in the same order), and the test set. The images are decoded straight
    /// into the two parts (<see cref="IdxReader.ReadImages(string, Func{int, int[][]})"/>), without a whole copy of the
    /// training set.
    /// </summary>
    /// <param name="dir">The directory of the four IDX files.</param>
    /// <param name="holdoutFraction">The share of the training images held out (rounded to the nearest image).</param>
    /// <param name="seed">The seed of the random split.</param>
    /// <exception cref="DataFormatException">A file is missing or damaged, or the files disagree.</exception>
    public static (LabeledData Train, LabeledData Holdout, LabeledData Test) LoadSplit(string dir, double holdoutFraction, int seed)
    {
        var (train, test) = Load(dir, n =>
        {
            var split = DataSplit.Indices(n, 0, holdoutFraction, seed);
            return [split.Train, split.Test];
        });
        return (train[0], train[1], test.Data);
    }

    /// <summary>The test set of the MNIST directory <paramref name="dir"/> (t10k-images and t10k-labels), read without the training set.</summary>
    /// <exception cref="DataFormatException">A test file is missing or damaged, or the two disagree.</exception>
    public static LabeledData LoadTestSet(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir)) throw new DataFormatException(dir, "no such directory");
        var images = IdxReader.ReadImageBytes(Find(dir, "t10k-images-idx3-ubyte"), All);
        var labels = IdxReader.ReadLabels(Find(dir, "t10k-labels-idx1-ubyte"));
        CheckLabels(dir, "t10k", images.Parts[0].Length / (images.Rows * images.Cols), labels);
        return new LabeledData(images.Parts[0], labels, images.Rows * images.Cols);
    }

    private static int[][] All(int n) => [[.. Enumerable.Range(0, n)]];

    /// <summary>The training set in the parts <paramref name="trainParts"/> chooses, and the test set with its image size.</summary>
    private static (LabeledData[] Train, (LabeledData Data, int Rows, int Cols) Test) Load(string dir, Func<int, int[][]> trainParts)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir)) throw new DataFormatException(dir, "no such directory");
        // The four files are independent: decode them concurrently. The images stay bytes (LabeledData's unit bytes).
        int[][]? parts = null;
        var trainImages = Task.Run(() => IdxReader.ReadImageBytes(Find(dir, "train-images-idx3-ubyte"), n => parts = trainParts(n)));
        var testImages = Task.Run(() => IdxReader.ReadImageBytes(Find(dir, "t10k-images-idx3-ubyte"), All));
        (byte[][] Parts, int Rows, int Cols) trI, teI;
        int[] trainLabels, testLabels;
        try
        {
            trainLabels = IdxReader.ReadLabels(Find(dir, "train-labels-idx1-ubyte"));
            testLabels = IdxReader.ReadLabels(Find(dir, "t10k-labels-idx1-ubyte"));
            trI = trainImages.GetAwaiter().GetResult();
            teI = testImages.GetAwaiter().GetResult();
        }
        finally
        {
            // Observe both tasks so that neither exception goes unobserved.
            _ = trainImages.Exception;
            _ = testImages.Exception;
        }
        int perTrain = trI.Rows * trI.Cols, perTest = teI.Rows * teI.Cols;
        CheckLabels(dir, "train", trI.Parts.Sum(p => p.Length / perTrain), trainLabels);   // the parts cover every image (this class's callers choose them so)
        CheckLabels(dir, "t10k", teI.Parts[0].Length / perTest, testLabels);
        if (teI.Rows != trI.Rows || teI.Cols != trI.Cols)
            throw new DataFormatException(dir, $"training images are {trI.Rows}×{trI.Cols} but test images are {teI.Rows}×{teI.Cols}");
        var train = trI.Parts.Select((bytes, k) => new LabeledData(bytes, [.. parts![k].Select(i => trainLabels[i])], perTrain)).ToArray();
        return (train, (new LabeledData(teI.Parts[0], testLabels, perTest), teI.Rows, teI.Cols));
    }

    /// <summary>Loads one images/labels pair and checks that they agree.</summary>
    public static LabeledData LoadPair(string imagesPath, string labelsPath)
    {
        var images = IdxReader.ReadImages(imagesPath);
        var labels = IdxReader.ReadLabels(labelsPath);
        return Combine(imagesPath, "", images, labels, labelsPath);
    }

    private static LabeledData Combine(string dir, string prefix, IdxImages images, int[] labels, string? labelsPath = null)
    {
        CheckLabels(dir, prefix, images.Count, labels, labelsPath);
        return new LabeledData(images.Pixels, labels, images.PixelsPerImage);
    }

    /// <summary>One label for each of <paramref name="count"/> images, each a digit.</summary>
    private static void CheckLabels(string dir, string prefix, int count, int[] labels, string? labelsPath = null)
    {
        string where = labelsPath is null ? dir : labelsPath;
        if (count != labels.Length)
        {
            string what = labelsPath is null
                ? $"{prefix} images hold {count} images but {prefix} labels hold {labels.Length} labels"
                : $"holds {labels.Length} labels but the image file holds {count} images";
            throw new DataFormatException(where, what);
        }
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] >= ClassCount)
                throw new DataFormatException(where, $"{(prefix.Length > 0 ? prefix + " " : "")}label {i} is {labels[i]}, outside the digits 0–9");
    }

    /// <summary>Finds NAME, NAME.gz, or the variant with a '.' before idx (train-images.idx3-ubyte).</summary>
    private static string Find(string dir, string name)
    {
        string dotted = name.Replace("-idx", ".idx");
        foreach (var candidate in new[] { name, name + ".gz", dotted, dotted + ".gz" })
        {
            var p = Path.Combine(dir, candidate);
            if (File.Exists(p)) return p;
        }
        throw new DataFormatException(Path.Combine(dir, name + "(.gz)"), "no such file");
    }
}
