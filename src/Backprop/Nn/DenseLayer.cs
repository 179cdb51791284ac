using System.Numerics;

namespace Backprop.Nn;

/// <summary>
/// A fully connected layer h = f(x·Wᵀ + b). The weight is stored out × in, as PyTorch's nn.Linear stores it;
/// the bias is optional.
/// </summary>
public sealed class DenseLayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public DenseLayer(Tensor<T> weight, Tensor<T>? bias, Activation<T> activation)
    {
        if (weight.Rank != 2) throw new ShapeMismatchException($"weight is {weight.ShapeString}, expected out × in");
        if (bias is not null && (bias.Rank != 1 || bias.Length != weight.Dim(0)))
            throw new ShapeMismatchException($"bias is {bias.ShapeString} but the weight is {weight.ShapeString}: expected [{weight.Dim(0)}]");
        Weight = Var<T>.Parameter(weight, "W");
        Bias = bias is null ? null : Var<T>.Parameter(bias, "b");
        Activation = activation;
    }

    public DenseLayer(int inputs, int outputs, Activation<T> activation, bool bias = true)
        : this(new Tensor<T>(outputs, inputs), bias ? new Tensor<T>(outputs) : null, activation) { }

    public Var<T> Weight { get; }
    public Var<T>? Bias { get; }
    public Activation<T> Activation { get; }
    public int Inputs => Weight.Value.Dim(1);
    public int Outputs => Weight.Value.Dim(0);

    public IEnumerable<Var<T>> Parameters()
    {
        yield return Weight;
        if (Bias is not null) yield return Bias;
    }

    /// <summary>Records z = x·Wᵀ + b and h = f(z); returns both (h is z itself for the identity).</summary>
    public (Var<T> z, Var<T> h) Forward(Var<T> x)
    {
        var z = Fn.Linear(x, Weight, Bias);
        var h = Activation.IsIdentity ? z : Fn.Activate(z, Activation);
        return (z, h);
    }

    public override string ToString() => $"DenseLayer({Inputs}→{Outputs}, {Activation.Name}{(Bias is null ? ", no bias" : "")})";
}
