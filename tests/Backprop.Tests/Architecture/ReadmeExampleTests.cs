using Backprop.Kernels;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Training;
using TempDir = Backprop.Tests.Training.TempDir;

namespace Backprop.Tests.Architecture;

/// <summary>The README's library examples, as written there, so that they keep compiling and doing what they say.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void The_tape_example_prints_the_gradient_of_the_first_weight()
    {
        var tape = new Tape<double>();
        var x = tape.Leaf(Tensor<double>.FromRows([[1.0, 2.0]]), requiresGrad: true, "x");
        var net = new Sequential<double>([
            new DenseLayer<double>(Tensor<double>.FromRows([[0.5, -0.2], [0.1, 0.3]]), Tensor<double>.FromVector([0.1, -0.1]), new Sigmoid<double>()),
            new DenseLayer<double>(Tensor<double>.FromRows([[0.7, -0.4]]), null, new Identity<double>()),
        ]);
        var y = net.Forward(x).Output;
        var loss = Functional.Mse(y, tape.Constant(Tensor<double>.FromRows([[0.3]])));
        tape.Backward(loss);
        var grad = ((DenseLayer<double>)net.Layers[0]).Weight.Grad;   // ∂L/∂W¹

        // By hand: z1 = W1·x + b1, h = σ(z1), ŷ = W2·h, L = (ŷ − 0.3)², ∂L/∂W1[i][j] = 2(ŷ − 0.3)·W2[i]·σ′(z1[i])·x[j].
        double[] z1 = [0.5 * 1 - 0.2 * 2 + 0.1, 0.1 * 1 + 0.3 * 2 - 0.1];
        double[] h = [.. z1.Select(z => 1 / (1 + Math.Exp(-z)))];
        double yHat = 0.7 * h[0] - 0.4 * h[1];
        double[] w2 = [0.7, -0.4];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                Assert.Equal(2 * (yHat - 0.3) * w2[i] * h[i] * (1 - h[i]) * (j == 0 ? 1.0 : 2.0), grad[i, j], 1e-12);
        Assert.Equal("Tensor[2×2]\n[[-0.0601, -0.1202],\n [ 0.0317,  0.0635]]", grad.ToString());   // what the README shows it prints
    }

    [Fact]
    public void The_training_run_example_trains_iris_and_saves_a_model()
    {
        using var tmp = new TempDir();
        var job = new TrainingJob { Data = CliRunner.DataPath("tabular", "iris.csv"), Layers = [4, 16, 3], Options = new TrainOptions { Epochs = 50, LearningRate = 0.01 } };
        using var context = new ComputeContext(threads: 1);
        var run = TrainingRun<float>.Create(job, checkpointPath: tmp.File("iris.ckpt"), context: context);
        var epochs = new List<int>();
        var result = run.Run(epochs: new Reporter<EpochReport>(e => epochs.Add(e.Result.Epoch)));
        run.SaveModel(tmp.File("iris.safetensors"));
        Assert.Equal(Enumerable.Range(1, 50), epochs);
        Assert.True(result.TestAccuracy > 0.85, $"test accuracy {result.TestAccuracy}");
        Assert.True(File.Exists(tmp.File("iris.safetensors")) && File.Exists(tmp.File("iris.ckpt")));
    }

    private sealed class Reporter<TValue>(Action<TValue> report) : IProgress<TValue>
    {
        public void Report(TValue value) => report(value);
    }
}
