namespace Backprop.Tests;

public class TensorTests
{
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
