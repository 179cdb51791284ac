namespace Backprop.Tests;

public class TensorTests
{
    [Theory]
    [InlineData(-2, 3)]
    [InlineData(2, -3)]
    [InlineData(-2, -3)]
    [InlineData(-1)]
    public void ANegativeDimensionIsAnArgumentExceptionThatShowsTheShape(params int[] shape)
    {
        var e = Assert.Throws<ArgumentException>(() => new Tensor<double>(shape));
        Assert.Contains("negative dimension", e.Message);
        Assert.Contains(ShapeUtil.Format(shape), e.Message);
    }

    [Fact]
    public void ShapeMismatchNamesBothShapes()
    {
        var a = new Tensor<double>(2, 3);
        var b = new Tensor<double>(3, 2);
        var ex = Assert.Throws<ShapeMismatchException>(() => { a.CopyFrom(b); });
        Assert.Contains("[2×3]", ex.Message);
        Assert.Contains("[3×2]", ex.Message);
    }
}
