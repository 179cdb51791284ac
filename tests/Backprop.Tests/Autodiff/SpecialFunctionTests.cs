namespace Backprop.Tests.Autodiff;

public class SpecialFunctionTests
{
    // Reference values from mpmath at 30 digits.
    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.1, 0.112462916018284892203275071744)]
    [InlineData(0.5, 0.520499877813046537682746653892)]
    [InlineData(1.0, 0.842700792949714869341220635083)]
    [InlineData(2.0, 0.995322265018952734162069256367)]
    [InlineData(2.9, 0.999958902121900491706290658698)]
    [InlineData(3.5, 0.999999256901627658587254476316)]
    [InlineData(-1.0, -0.842700792949714869341220635083)]
    public void ErfMatchesHighPrecisionValues(double x, double expected) =>
        Assert.Equal(expected, SpecialFunctions.Erf(x), 1e-15);

    [Theory]
    [InlineData(3.5, 7.43098372341412745651e-7)]
    [InlineData(5.0, 1.53745979442803485018e-12)]
    [InlineData(10.0, 2.08848758376254475700e-45)]
    public void ErfcKeepsRelativeAccuracyInTheTail(double x, double expected) =>
        Assert.Equal(1.0, SpecialFunctions.Erfc(x) / expected, 1e-13);

    [Theory]
    [InlineData(1.0, 0.841344746068542948585232545632)]
    [InlineData(-1.0, -0.158655253931457051414767454368)]
    [InlineData(-5.0, -1.4332578593959731e-6)]
    public void GeluIsXTimesTheNormalCdf(double x, double expected)
    {
        var y = new double[1];
        new Gelu<double>().Forward([x], y, 1);
        Assert.Equal(expected, y[0], 1e-15);
    }

    [Fact]
    public void SoftplusIsStableAndLinearPastTwenty()
    {
        var y = new double[3];
        new Softplus<double>().Forward([-40.0, 0.0, 25.0], y, 3);
        Assert.Equal(Math.Exp(-40), y[0], 1e-30);
        Assert.Equal(Math.Log(2), y[1], 1e-15);
        Assert.Equal(25.0, y[2]);
    }
}
