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
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir)) throw new DataFormatException(dir, "no such directory");
        // The four files are independent: decode them concurrently.
        var trainImages = Task.Run(() => IdxReader.ReadImages(Find(dir, "train-images-idx3-ubyte")));
        var testImages = Task.Run(() => IdxReader.ReadImages(Find(dir, "t10k-images-idx3-ubyte")));
        var trainLabels = IdxReader.ReadLabels(Find(dir, "train-labels-idx1-ubyte"));
        var testLabels = IdxReader.ReadLabels(Find(dir, "t10k-labels-idx1-ubyte"));
        IdxImages trI, teI;
        try
        {
            trI = trainImages.GetAwaiter().GetResult();
            teI = testImages.GetAwaiter().GetResult();
        }
        finally
        {
            // Observe both tasks so that neither exception goes unobserved.
            _ = trainImages.Exception;
            _ = testImages.Exception;
        }
        var train = Combine(dir, "train", trI, trainLabels);
        var test = Combine(dir, "t10k", teI, testLabels);
        if (trI.Rows != teI.Rows || trI.Cols != teI.Cols)
            throw new DataFormatException(dir, $"training images are {trI.Rows}×{trI.Cols} but test images are {teI.Rows}×{teI.Cols}");
        return new MnistDataset(train, test, trI.Rows, trI.Cols);
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
        string where = labelsPath is null ? dir : labelsPath;
        if (images.Count != labels.Length)
        {
            string what = labelsPath is null
                ? $"{prefix} images hold {images.Count} images but {prefix} labels hold {labels.Length} labels"
                : $"holds {labels.Length} labels but the image file holds {images.Count} images";
            throw new DataFormatException(where, what);
        }
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] >= ClassCount)
                throw new DataFormatException(where, $"{(prefix.Length > 0 ? prefix + " " : "")}label {i} is {labels[i]}, outside the digits 0–9");
        return new LabeledData(images.Pixels, labels, images.PixelsPerImage);
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
