namespace Backprop.Tests;

/// <summary>A tensor prints its shape, then its values as PyTorch lays them out.</summary>
public class TensorFormatTests
{
    [Fact]
    public void A_matrix_prints_aligned_rows_with_four_decimals()
    {
        var t = Tensor<double>.FromRows([[0.025394617958746, 0.027541255211127887], [0.00519310869269136, -0.5632088345526015]]);
        Assert.Equal("Tensor[2×2]\n[[ 0.0254,  0.0275],\n [ 0.0052, -0.5632]]", t.ToString());
    }

    [Fact]
    public void Whole_numbers_a_scalar_and_special_values()
    {
        Assert.Equal("Tensor[3]\n[1., 2., 3.]", Tensor<float>.FromVector([1, 2, 3]).ToString());
        Assert.Equal("Tensor[] 3.1416", Tensor<double>.Scalar(3.14159265).ToString());
        Assert.Equal("Tensor[3]\n[   nan, 1.5000,   -inf]", Tensor<double>.FromVector([double.NaN, 1.5, double.NegativeInfinity]).ToString());
    }

    [Fact]
    public void A_parameter_and_its_gradient_print_their_values()
    {
        var w = Var<double>.Parameter(Tensor<double>.FromRows([[0.5, -0.25], [1, 2]]), "W");
        Assert.Equal("W: Tensor[2×2]\n[[ 0.5000, -0.2500],\n [ 1.0000,  2.0000]]", w.ToString());
        var layer = new Backprop.Nn.DenseLayer<double>(Tensor<double>.FromRows([[3.0]]), null, new Identity<double>());
        Assert.Equal("Tensor[1×1]\n[[3.]]", layer.Weight.Value.ToString());
        Assert.EndsWith("Tensor[1×1]\n[[3.]]", layer.Weight.ToString());
    }

    [Fact]
    public void Magnitudes_that_span_more_than_1000_times_print_in_scientific_notation()
    {
        Assert.Equal("Tensor[3]\n[1.0000e-06, 2.5000e+00, 1.0000e+05]", Tensor<double>.FromVector([1e-6, 2.5, 1e5]).ToString());
    }

    [Fact]
    public void A_three_dimensional_tensor_nests_its_blocks()
    {
        var t = new Tensor<double>(2, 2, 3);
        for (int i = 0; i < t.Length; i++) t[i] = i - 5.5;
        Assert.Equal("Tensor[2×2×3]\n[[[-5.5000, -4.5000, -3.5000],\n  [-2.5000, -1.5000, -0.5000]],\n\n [[ 0.5000,  1.5000,  2.5000],\n  [ 3.5000,  4.5000,  5.5000]]]", t.ToString());
    }

    [Fact]
    public void More_than_1000_values_show_three_at_each_end_of_each_dimension()
    {
        var t = new Tensor<float>(40, 50);
        for (int i = 0; i < t.Length; i++) t[i] = (i % 7) * 0.25f + 1;
        var lines = t.ToString().Split('\n');
        Assert.Equal("Tensor[40×50]", lines[0]);
        Assert.Equal(1 + 3 + 1 + 3, lines.Length);
        Assert.Equal(" …,", lines[4]);
        Assert.Equal("[[1.0000, 1.2500, 1.5000, …, 2.2500, 2.5000, 1.0000],", lines[1]);   // entries 0–2 and 47–49 of row 0
        Assert.EndsWith("]]", lines[^1]);
    }
}
