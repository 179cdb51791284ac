using Backprop.Nn;
using Backprop.Training;

namespace Backprop.Tests.Training;

public class InitializerTests
{
    private static Tensor<double> Filled(int fanOut, int fanIn, InitKind kind, string activation, int seed = 123)
    {
        var w = new Tensor<double>(fanOut, fanIn);
        Initializers.Fill(w, kind, activation, new Random(seed));
        return w;
    }

    private static (double mean, double std) Moments(double[] d)
    {
        double mean = d.Average();
        return (mean, Math.Sqrt(d.Sum(x => (x - mean) * (x - mean)) / (d.Length - 1)));
    }

    [Theory]
    [InlineData(300, 200, "identity", 1.0)]
    [InlineData(50, 784, "sigmoid", 1.0)]
    [InlineData(64, 64, "tanh", 5.0 / 3.0)] // torch.nn.init.calculate_gain('tanh')
    public void Xavier_uniform_stays_within_its_bound_and_fills_it(int fanOut, int fanIn, string activation, double gain)
    {
        var w = Filled(fanOut, fanIn, InitKind.XavierUniform, activation);
        double bound = gain * Math.Sqrt(6.0 / (fanIn + fanOut));
        Assert.All(w.Data.ToArray(), x => Assert.InRange(Math.Abs(x), 0, bound));
        // uniform on [−a, a]: the extremes are approached, the variance is a²/3
        Assert.True(w.Data.ToArray().Max() > 0.98 * bound && w.Data.ToArray().Min() < -0.98 * bound);
        var (mean, std) = Moments(w.Data.ToArray());
        double n = w.Length;
        Assert.InRange(mean, -5 * bound / Math.Sqrt(3 * n), 5 * bound / Math.Sqrt(3 * n));
        Assert.InRange(std, bound / Math.Sqrt(3) * 0.95, bound / Math.Sqrt(3) * 1.05);
    }

    [Theory]
    [InlineData(400, 300)]
    [InlineData(256, 784)]
    public void He_normal_has_std_sqrt_2_over_fan_in(int fanOut, int fanIn)
    {
        var w = Filled(fanOut, fanIn, InitKind.HeNormal, "relu");
        double expected = Math.Sqrt(2.0 / fanIn);
        var (mean, std) = Moments(w.Data.ToArray());
        int n = w.Length; // ≥ 120,000 samples: the sample std is within ~0.2 % (1σ) of the true one
        Assert.InRange(std, expected * 0.98, expected * 1.02);
        Assert.InRange(mean, -5 * expected / Math.Sqrt(n), 5 * expected / Math.Sqrt(n));
        // normal, not uniform: about 4.55 % of the values lie beyond 2σ (uniform has none beyond 1.73σ)
        double beyond2 = w.Data.ToArray().Count(x => Math.Abs(x) > 2 * expected) / (double)n;
        Assert.InRange(beyond2, 0.040, 0.051);
    }

    [Fact]
    public void He_uniform_and_xavier_normal_follow_their_formulas()
    {
        var hu = Filled(200, 500, InitKind.HeUniform, "relu");
        double a = Math.Sqrt(6.0 / 500);
        Assert.All(hu.Data.ToArray(), x => Assert.InRange(Math.Abs(x), 0, a));
        Assert.InRange(Moments(hu.Data.ToArray()).std, a / Math.Sqrt(3) * 0.97, a / Math.Sqrt(3) * 1.03);

        var xn = Filled(200, 500, InitKind.XavierNormal, "sigmoid");
        double s = Math.Sqrt(2.0 / 700);
        Assert.InRange(Moments(xn.Data.ToArray()).std, s * 0.97, s * 1.03);
    }

    [Theory]
    [InlineData("relu", InitKind.HeNormal)]
    [InlineData("leaky_relu", InitKind.HeNormal)]
    [InlineData("gelu", InitKind.HeNormal)]
    [InlineData("tanh", InitKind.XavierUniform)]
    [InlineData("sigmoid", InitKind.XavierUniform)]
    [InlineData("identity", InitKind.XavierUniform)]
    public void Default_depends_on_the_activation(string activation, InitKind expected)
    {
        Assert.Equal(expected, Initializers.DefaultFor(activation));
        // Default fills exactly what the chosen kind fills
        var viaDefault = Filled(30, 40, InitKind.Default, activation, seed: 9);
        var explicitKind = Filled(30, 40, expected, activation, seed: 9);
        Assert.Equal(explicitKind.Data, viaDefault.Data);
    }

    [Fact]
    public void Same_seed_same_weights_different_seed_different_weights()
    {
        var a = Initializers.Mlp<double>([10, 32, 16, 3], "relu", seed: 5);
        var b = Initializers.Mlp<double>([10, 32, 16, 3], "relu", seed: 5);
        var c = Initializers.Mlp<double>([10, 32, 16, 3], "relu", seed: 6);
        TrainingAssert.BitIdentical(a, b);
        Assert.False(TrainingAssert.SameBits(a, c));
    }

    [Fact]
    public void Mlp_has_the_requested_shapes_zero_biases_and_identity_output()
    {
        var net = Initializers.Mlp<float>([7, 5, 4, 2], "tanh", seed: 1);
        Assert.Equal(3, net.Layers.Count);
        Assert.Equal(new[] { 7, 5, 4 }, net.Layers.Select(l => l.Inputs));
        Assert.Equal(new[] { 5, 4, 2 }, net.Layers.Select(l => l.Outputs));
        Assert.Equal(new[] { "tanh", "tanh", "identity" }, net.Layers.Select(l => l.Activation.Name));
        Assert.All(net.Layers, l => Assert.All(l.Parameter("bias")!.Value.Data.ToArray(), b => Assert.Equal(0f, b)));
        Assert.All(net.Layers, l => Assert.Contains(l.Parameter("weight")!.Value.Data.ToArray(), w => w != 0));
        // the output layer is Xavier uniform (tanh gain does not apply to identity)
        double bound = Math.Sqrt(6.0 / (4 + 2));
        Assert.All(net.Layers[^1].Parameter("weight")!.Value.Data.ToArray(), w => Assert.InRange(Math.Abs(w), 0, bound));
    }

    [Theory]
    [InlineData("default", InitKind.Default)]
    [InlineData("xavier_uniform", InitKind.XavierUniform)]
    [InlineData("glorot_normal", InitKind.XavierNormal)]
    [InlineData("kaiming_uniform", InitKind.HeUniform)]
    [InlineData("he_normal", InitKind.HeNormal)]
    public void Parse_knows_the_names(string name, InitKind kind) => Assert.Equal(kind, Initializers.Parse(name));

    [Fact]
    public void Parse_rejects_unknown_names_and_mlp_rejects_bad_sizes()
    {
        Assert.Throws<ArgumentException>(() => Initializers.Parse("orthogonal"));
        Assert.Throws<ArgumentException>(() => Initializers.Mlp<double>([4], "relu", 0));
        Assert.Throws<ArgumentException>(() => Initializers.Mlp<double>([4, 0, 3], "relu", 0));
    }
}
