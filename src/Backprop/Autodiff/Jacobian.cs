using System.Numerics;
using Backprop.Core;

namespace Backprop.Autodiff;

/// <summary>Full Jacobian matrices by repeated reverse-mode passes, one per output element: for tests and <c>explain</c> on small graphs.</summary>
public static class Jacobian
{
    /// <summary>
    /// ∂vec(y)/∂vec(x) by reverse mode: the seed e_k on output element k gives row k. The tape must already hold
    /// current values (it is not re-run). Rows are output elements, columns the elements of x, both row-major.
    /// </summary>
    public static Tensor<T> Compute<T>(Tape<T> tape, Var<T> y, Var<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = y.Value.Length, cols = x.Value.Length;
        var j = new Tensor<T>(rows, cols);
        var seed = new Tensor<T>(y.Value.ShapeArray);
        for (int k = 0; k < rows; k++)
        {
            seed.Fill(T.Zero);
            seed.Data[k] = T.One;
            tape.Backward(y, seed);
            x.Grad.Data.CopyTo(j.Data.Slice(k * cols, cols));
        }
        return j;
    }
}
