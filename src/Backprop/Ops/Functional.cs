using System.Numerics;
using Backprop.Autodiff;

namespace Backprop.Ops;

/// <summary>
/// The differentiable functions, as torch.nn.functional: each records one op on the tape of its operands and returns the
/// op's output.
/// </summary>
public static class Functional
{
    private static Tape<T> TapeOf<T>(Var<T>[] inputs) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var v in inputs)
            if (v.Tape is not null) return v.Tape;
        throw new InvalidOperationException("none of the operands belongs to a tape: create inputs with tape.Leaf(...)");
    }

    /// <summary>Runs <paramref name="op"/> on <paramref name="inputs"/> now and records it on their tape; every function here goes through it.</summary>
    /// <exception cref="InvalidOperationException">No operand belongs to a tape (free parameters alone), or the operands belong to different tapes.</exception>
    /// <exception cref="Core.ShapeMismatchException">The operands' shapes do not fit the op; the message names them.</exception>
    public static Var<T> Apply<T>(Op<T> op, params Var<T>[] inputs) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tape = TapeOf(inputs);
        foreach (var v in inputs)
            if (v.Tape is not null && !ReferenceEquals(v.Tape, tape))
                throw new InvalidOperationException($"{op.Name}: operands belong to different tapes");
        return tape.Record(op, inputs);
    }

    /// <summary>The matrix product op(A)·op(B), where op transposes when asked: m × k times k × n gives m × n.</summary>
    /// <exception cref="Core.ShapeMismatchException">An operand is not a matrix, or the inner dimensions differ.</exception>
    public static Var<T> MatMul<T>(Var<T> a, Var<T> b, bool transA = false, bool transB = false)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new MatMulOp<T>(transA, transB), a, b);

    /// <summary>z = x·Wᵀ + b with W stored out × in.</summary>
    public static Var<T> Linear<T>(Var<T> x, Var<T> weight, Var<T>? bias = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        bias is null ? Apply(new LinearOp<T>(false), x, weight) : Apply(new LinearOp<T>(true), x, weight, bias);

    /// <summary>A + B element-wise, broadcasting as NumPy does (a bias row added to every row of a batch).</summary>
    public static Var<T> Add<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new AddOp<T>(), a, b);
    /// <summary>A − B element-wise, broadcasting as NumPy does.</summary>
    public static Var<T> Sub<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SubOp<T>(), a, b);
    /// <summary>A ⊙ B, the element-wise (Hadamard) product, broadcasting as NumPy does.</summary>
    public static Var<T> Mul<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new MulOp<T>(), a, b);
    /// <summary>A ⊘ B element-wise, broadcasting as NumPy does; division by zero gives ±∞ or NaN as IEEE 754 says.</summary>
    public static Var<T> Div<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new DivOp<T>(), a, b);
    /// <summary>−A element-wise.</summary>
    public static Var<T> Neg<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new NegOp<T>(), a);

    /// <summary>A + s for every element; <paramref name="s"/> is converted to <typeparamref name="T"/> once.</summary>
    public static Var<T> AddScalar<T>(Var<T> a, double s) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new AddScalarOp<T>(T.CreateChecked(s)), a);
    /// <summary>s·A for every element; <paramref name="s"/> is converted to <typeparamref name="T"/> once.</summary>
    public static Var<T> MulScalar<T>(Var<T> a, double s) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new MulScalarOp<T>(T.CreateChecked(s)), a);
    /// <summary>A^p element-wise for a constant exponent (dA = p·A^(p−1)·dY).</summary>
    public static Var<T> Pow<T>(Var<T> a, double p) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new PowScalarOp<T>(T.CreateChecked(p)), a);

    /// <summary>The sum of all elements, a scalar (shape []).</summary>
    public static Var<T> Sum<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SumOp<T>(), a);
    /// <summary>The mean of all elements, a scalar (shape []).</summary>
    public static Var<T> Mean<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SumOp<T>(mean: true), a);
    /// <summary>The sum along <paramref name="axis"/> (negative counts from the end), which is removed unless <paramref name="keepDim"/> keeps it as size 1.</summary>
    /// <exception cref="Core.ShapeMismatchException">The axis is out of range for the operand's rank.</exception>
    public static Var<T> Sum<T>(Var<T> a, int axis, bool keepDim = false) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new SumOp<T>(axis, keepDim), a);
    /// <summary>The mean along <paramref name="axis"/> (negative counts from the end), which is removed unless <paramref name="keepDim"/> keeps it as size 1.</summary>
    /// <exception cref="Core.ShapeMismatchException">The axis is out of range for the operand's rank.</exception>
    public static Var<T> Mean<T>(Var<T> a, int axis, bool keepDim = false) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new SumOp<T>(axis, keepDim, mean: true), a);

    /// <summary>e^A element-wise.</summary>
    public static Var<T> Exp<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new ExpOp<T>(), a);
    /// <summary>The natural logarithm element-wise; ≤ 0 gives −∞ or NaN, and so does the gradient 1/A at 0.</summary>
    public static Var<T> Log<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new LogOp<T>(), a);

    /// <summary>Applies <paramref name="activation"/> (element-wise, or row-wise for softmax) as one op that <c>explain</c> names after it.</summary>
    public static Var<T> Activate<T>(Var<T> a, Activation<T> activation) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new ActivationOp<T>(activation), a);
    /// <summary>Applies the built-in activation named <paramref name="activation"/> (a name or alias of <see cref="ActivationRegistry.Default"/>).</summary>
    /// <exception cref="ArgumentException">No built-in activation has that name.</exception>
    public static Var<T> Activate<T>(Var<T> a, string activation) where T : unmanaged, IFloatingPointIeee754<T> =>
        Activate(a, Activations.Create<T>(activation));
    /// <summary>σ(A) = 1 / (1 + e^−A) element-wise.</summary>
    public static Var<T> Sigmoid<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Sigmoid<T>());
    /// <summary>tanh(A) element-wise.</summary>
    public static Var<T> Tanh<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Tanh<T>());
    /// <summary>max(0, A) element-wise; the gradient at 0 is 0, as in PyTorch.</summary>
    public static Var<T> Relu<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Relu<T>());
    /// <summary>A where A &gt; 0, else <paramref name="slope"/>·A, element-wise (PyTorch's default slope 0.01).</summary>
    public static Var<T> LeakyRelu<T>(Var<T> a, double slope = 0.01) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new LeakyRelu<T>(slope));
    /// <summary>A where A &gt; 0, else <paramref name="alpha"/>·(e^A − 1), element-wise.</summary>
    public static Var<T> Elu<T>(Var<T> a, double alpha = 1.0) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Elu<T>(alpha));
    /// <summary>log(1 + e^A) element-wise, linear above 20 as in PyTorch (no overflow).</summary>
    public static Var<T> Softplus<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Softplus<T>());
    /// <summary>GELU, A·Φ(A) with Φ the standard normal CDF (the exact erf form, PyTorch's default), element-wise.</summary>
    public static Var<T> Gelu<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Gelu<T>());
    /// <summary>SiLU (swish), A·σ(A), element-wise.</summary>
    public static Var<T> Silu<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Silu<T>());
    /// <summary>Softmax of each row (the last axis): exp(A) / Σ_row exp(A), computed stably by subtracting the row maximum.</summary>
    public static Var<T> Softmax<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SoftmaxOp<T>(false), a);
    /// <summary>Log-softmax of each row (the last axis): A − log Σ_row exp(A), computed stably.</summary>
    public static Var<T> LogSoftmax<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SoftmaxOp<T>(true), a);

    /// <summary>The squared error (prediction − target)², averaged or summed over all elements by <paramref name="reduction"/>; a scalar.</summary>
    /// <exception cref="Core.ShapeMismatchException">Prediction and target have different shapes.</exception>
    public static Var<T> Mse<T>(Var<T> prediction, Var<T> target, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new MseLossOp<T>(reduction), prediction, target);

    /// <summary>
    /// Softmax cross-entropy of batch × classes <paramref name="logits"/> against one class index per row, computed from the
    /// logits (log-sum-exp) so that it never takes the log of 0; averaged or summed over the rows; a scalar.
    /// </summary>
    public static Var<T> CrossEntropy<T>(Var<T> logits, ClassTargets targets, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new CrossEntropyLossOp<T>(reduction, targets), logits);

    /// <summary>Softmax cross-entropy against the class index of each row (see <see cref="CrossEntropy{T}(Var{T}, ClassTargets, Reduction)"/>).</summary>
    public static Var<T> CrossEntropy<T>(Var<T> logits, int[] targets, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => CrossEntropy(logits, new ClassTargets(targets), reduction);

    /// <summary>
    /// Binary cross-entropy of each logit against a 0/1 target (multi-label), computed from the logits without overflow;
    /// averaged or summed over all elements; a scalar.
    /// </summary>
    /// <param name="logits">Batch × labels raw scores.</param>
    /// <param name="target">Batch × labels targets in [0, 1].</param>
    /// <param name="reduction">Mean or sum over all elements.</param>
    /// <param name="posWeight">A weight per label for the positive term (PyTorch's pos_weight); null for 1.</param>
    public static Var<T> BceWithLogits<T>(Var<T> logits, Var<T> target, Reduction reduction = Reduction.Mean, double[]? posWeight = null)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new BceWithLogitsLossOp<T>(reduction, posWeight), logits, target);

    /// <summary>The absolute error |prediction − target|, averaged or summed over all elements; a scalar.</summary>
    /// <exception cref="Core.ShapeMismatchException">Prediction and target have different shapes.</exception>
    public static Var<T> L1<T>(Var<T> prediction, Var<T> target, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new L1LossOp<T>(reduction), prediction, target);

    /// <summary>
    /// The Huber loss: ½e² where |e| ≤ <paramref name="delta"/>, else delta·(|e| − ½delta), with e = prediction − target;
    /// averaged or summed over all elements; a scalar.
    /// </summary>
    /// <exception cref="Core.ShapeMismatchException">Prediction and target have different shapes.</exception>
    public static Var<T> Huber<T>(Var<T> prediction, Var<T> target, double delta = 1.0, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new HuberLossOp<T>(reduction, delta), prediction, target);

    /// <summary>Layer norm over each row; <paramref name="gamma"/> and <paramref name="beta"/> together or neither.</summary>
    public static Var<T> LayerNorm<T>(Var<T> x, Var<T>? gamma = null, Var<T>? beta = null, double eps = 1e-5)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        gamma is null ? Apply(new LayerNormOp<T>(eps), x) : Apply(new LayerNormOp<T>(eps), x, gamma, beta ?? throw new ArgumentNullException(nameof(beta)));

    /// <summary>Batch norm per feature with <paramref name="statistics"/> (whose mode says training or evaluation).</summary>
    public static Var<T> BatchNorm<T>(Var<T> x, BatchNormStatistics<T> statistics, Var<T>? gamma = null, Var<T>? beta = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        gamma is null ? Apply(new BatchNormOp<T>(statistics), x) : Apply(new BatchNormOp<T>(statistics), x, gamma, beta ?? throw new ArgumentNullException(nameof(beta)));

    /// <summary>Inverted dropout with the units <paramref name="mask"/> drops: in training, kept units are scaled by 1/(1 − p), so evaluation (the mask's mode) passes x unchanged.</summary>
    public static Var<T> Dropout<T>(Var<T> x, DropoutMask<T> mask) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new DropoutOp<T>(mask), x);
}
