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

    public static Var<T> Apply<T>(Op<T> op, params Var<T>[] inputs) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tape = TapeOf(inputs);
        foreach (var v in inputs)
            if (v.Tape is not null && !ReferenceEquals(v.Tape, tape))
                throw new InvalidOperationException($"{op.Name}: operands belong to different tapes");
        return tape.Record(op, inputs);
    }

    public static Var<T> MatMul<T>(Var<T> a, Var<T> b, bool transA = false, bool transB = false)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new MatMulOp<T>(transA, transB), a, b);

    /// <summary>z = x·Wᵀ + b with W stored out × in.</summary>
    public static Var<T> Linear<T>(Var<T> x, Var<T> weight, Var<T>? bias = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        bias is null ? Apply(new LinearOp<T>(false), x, weight) : Apply(new LinearOp<T>(true), x, weight, bias);

    public static Var<T> Add<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new AddOp<T>(), a, b);
    public static Var<T> Sub<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SubOp<T>(), a, b);
    public static Var<T> Mul<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new MulOp<T>(), a, b);
    public static Var<T> Div<T>(Var<T> a, Var<T> b) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new DivOp<T>(), a, b);
    public static Var<T> Neg<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new NegOp<T>(), a);

    public static Var<T> AddScalar<T>(Var<T> a, double s) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new AddScalarOp<T>(T.CreateChecked(s)), a);
    public static Var<T> MulScalar<T>(Var<T> a, double s) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new MulScalarOp<T>(T.CreateChecked(s)), a);
    public static Var<T> Pow<T>(Var<T> a, double p) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new PowScalarOp<T>(T.CreateChecked(p)), a);

    public static Var<T> Sum<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SumOp<T>(), a);
    public static Var<T> Mean<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SumOp<T>(mean: true), a);
    public static Var<T> Sum<T>(Var<T> a, int axis, bool keepDim = false) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new SumOp<T>(axis, keepDim), a);
    public static Var<T> Mean<T>(Var<T> a, int axis, bool keepDim = false) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new SumOp<T>(axis, keepDim, mean: true), a);

    public static Var<T> Exp<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new ExpOp<T>(), a);
    public static Var<T> Log<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new LogOp<T>(), a);

    public static Var<T> Activate<T>(Var<T> a, Activation<T> activation) where T : unmanaged, IFloatingPointIeee754<T> =>
        Apply(new ActivationOp<T>(activation), a);
    public static Var<T> Activate<T>(Var<T> a, string activation) where T : unmanaged, IFloatingPointIeee754<T> =>
        Activate(a, Activations.Create<T>(activation));
    public static Var<T> Sigmoid<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Sigmoid<T>());
    public static Var<T> Tanh<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Tanh<T>());
    public static Var<T> Relu<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Relu<T>());
    public static Var<T> LeakyRelu<T>(Var<T> a, double slope = 0.01) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new LeakyRelu<T>(slope));
    public static Var<T> Elu<T>(Var<T> a, double alpha = 1.0) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Elu<T>(alpha));
    public static Var<T> Softplus<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Softplus<T>());
    public static Var<T> Gelu<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Gelu<T>());
    public static Var<T> Silu<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Activate(a, new Silu<T>());
    public static Var<T> Softmax<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SoftmaxOp<T>(false), a);
    public static Var<T> LogSoftmax<T>(Var<T> a) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new SoftmaxOp<T>(true), a);

    public static Var<T> Mse<T>(Var<T> prediction, Var<T> target, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new MseLossOp<T>(reduction), prediction, target);

    public static Var<T> CrossEntropy<T>(Var<T> logits, ClassTargets targets, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new CrossEntropyLossOp<T>(reduction, targets), logits);

    public static Var<T> CrossEntropy<T>(Var<T> logits, int[] targets, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => CrossEntropy(logits, new ClassTargets(targets), reduction);

    public static Var<T> BceWithLogits<T>(Var<T> logits, Var<T> target, Reduction reduction = Reduction.Mean, double[]? posWeight = null)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new BceWithLogitsLossOp<T>(reduction, posWeight), logits, target);

    public static Var<T> L1<T>(Var<T> prediction, Var<T> target, Reduction reduction = Reduction.Mean)
        where T : unmanaged, IFloatingPointIeee754<T> => Apply(new L1LossOp<T>(reduction), prediction, target);

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

    public static Var<T> Dropout<T>(Var<T> x, DropoutMask<T> mask) where T : unmanaged, IFloatingPointIeee754<T> => Apply(new DropoutOp<T>(mask), x);
}
