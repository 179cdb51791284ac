using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Kernels;

namespace Backprop.Ops;

/// <summary>A layer's switch between training and evaluation, read by its ops each time they run (a replayed tape follows it).</summary>
public sealed class LayerMode
{
    /// <summary>True (the default) while training: batch norm uses the batch's statistics and dropout drops; false in evaluation. Not synchronised: set it between passes.</summary>
    public bool Training { get; set; } = true;
}

/// <summary>
/// Layer normalisation over each row's features, with an optional per-feature scale γ and shift β (PyTorch's
/// nn.LayerNorm(F, eps)): μ and σ² (biased) of row i, x̂ = (x − μ)/√(σ² + ε), y = γ ⊙ x̂ + β. Inputs: x, or x, γ, β.
/// </summary>
public sealed class LayerNormOp<T>(double eps) : Op<T>, IReferenceBackward<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _xhat;
    private T[] _rstd = [], _row = [], _tmp = [];

    /// <summary>ε added to each row's variance before the square root (PyTorch's default 1e-5).</summary>
    public double Eps { get; } = eps;
    /// <inheritdoc/>
    public override string Name => "layer_norm";
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["x", "γ", "β"];
    /// <inheritdoc/>
    public override string Formula =>
        "y = γ ⊙ x̂ + β, x̂ = (x − μ)/σ̂, σ̂ = √(σ² + ε), μ = (1/F)·Σ_f x, σ² = (1/F)·Σ_f (x − μ)² over each row's F features";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas =>
    [
        "dx = (1/σ̂)·(dx̂ − mean_f(dx̂) − x̂ ⊙ mean_f(dx̂ ⊙ x̂)), dx̂ = dy ⊙ γ   (mean_f over each row's F features: the mean term is the path through μ, the x̂ term the path through σ²)",
        "dγ = Σ_rows dy ⊙ x̂",
        "dβ = Σ_rows dy",
    ];

    /// <inheritdoc/>
    public IReadOnlyList<string> LocalSymbols => ["x̂", "μ", "σ²", "σ̂", "dx̂"];

    /// <summary>The rule recomputed in float64 from x: each row's μ, σ̂ and x̂, then dx̂ = dy ⊙ γ and the rule for the operand.</summary>
    public ReferenceGradient ReferenceBackward(Var<T>[] inputs, Tensor<double> dy, int which)
    {
        var (mean, sigmaHat, xhat) = Reference.Normalize(Reference.ToDouble(inputs[0].Value), Eps, rows: true);
        var xhatValue = new ReferenceValue("x̂", "(x − μ)/σ̂, the normalised input", xhat);
        switch (which)
        {
            case 0:
                var dxhat = Reference.ScaledByGamma(dy, inputs);
                return new(Reference.NormalizeBackward(dxhat, xhat, sigmaHat, rows: true),
                [
                    new("μ", "the mean of each row's features", mean),
                    new("σ̂", "√(σ² + ε) of each row (σ² the biased variance)", sigmaHat),
                    xhatValue,
                    new("dx̂", inputs.Length > 1 ? "dy ⊙ γ" : "dy (no γ)", dxhat),
                ], "each row goes through its own μ and σ² only: a sample's gradient does not depend on the other samples");
            case 1:
                return new(Reference.ColumnSums(Reference.Hadamard(dy, xhat)), [xhatValue]);
            default:
                return new(Reference.ColumnSums(dy), []);
        }
    }

    /// <summary>The normalised input x̂ of the last forward pass.</summary>
    public Tensor<T>? Normalized => _xhat;

    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs)
    {
        var x = inputs[0].Value;
        if (x.Rank != 2) throw new ShapeMismatchException($"layer_norm: input is {x.ShapeString}, expected batch × features");
        for (int k = 1; k < inputs.Length; k++)
            if (inputs[k].Value.Rank != 1 || inputs[k].Value.Length != x.Dim(1))
                throw new ShapeMismatchException($"layer_norm: {InputNames[k]} is {inputs[k].ShapeString} but the input has {x.Dim(1)} features");
        return x.ShapeArray;
    }

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var x = inputs[0].Value;
        int n = x.Dim(0), f = x.Dim(1);
        if (_xhat is null || _xhat.Dim(0) != n || _xhat.Dim(1) != f) _xhat = new Tensor<T>(n, f);
        if (_rstd.Length != n) _rstd = new T[n];
        Normalization.NormalizeRows(x.Data, _xhat.Data, _rstd, n, f, T.CreateChecked(Eps));
        Normalization.Affine(_xhat.Data, inputs.Length > 1 ? inputs[1].Value.Data : default, inputs.Length > 2 ? inputs[2].Value.Data : default,
            output.Data, n, f);
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        int n = _xhat!.Dim(0), f = _xhat.Dim(1);
        var dy = output.Grad.Data;
        var xh = _xhat.Data;
        Normalization.AffineBackward(inputs, dy, xh, n, f);
        if (!inputs[0].RequiresGrad) return;
        var g = inputs[0].GradTarget(out bool acc).Data;
        ReadOnlySpan<T> gamma = inputs.Length > 1 ? inputs[1].Value.Data : default;
        if (_row.Length != f) { _row = new T[f]; _tmp = new T[f]; }
        T invF = T.One / T.CreateChecked(f);
        for (int i = 0; i < n; i++)
        {
            ReadOnlySpan<T> xr = xh.Slice(i * f, f), d = dy.Slice(i * f, f);
            if (!gamma.IsEmpty) { TensorPrimitives.Multiply(d, gamma, _row); d = _row; }
            T mean = TensorPrimitives.Sum(d) * invF, meanDot = TensorPrimitives.Dot(d, xr) * invF, r = _rstd[i];
            // dx = r·(dx̂ − mean − x̂·meanDot), as one fused pass and two scalings
            TensorPrimitives.MultiplyAdd(xr, -meanDot, d, _tmp);
            TensorPrimitives.Subtract(_tmp, mean, _tmp);
            var gr = g.Slice(i * f, f);
            if (acc) TensorPrimitives.MultiplyAdd(_tmp, r, gr, gr);
            else TensorPrimitives.Multiply(_tmp, r, gr);
        }
    }
}

/// <summary>
/// The running statistics of a batch norm and how they update (PyTorch's BatchNorm1d): in training, each forward pass
/// moves them toward the batch's mean and unbiased variance by <see cref="Momentum"/>.
/// </summary>
public sealed class BatchNormStatistics<T>(Tensor<T> runningMean, Tensor<T> runningVar, double eps, double momentum)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The running mean, one value per feature; training updates it in place: (1 − momentum)·running + momentum·μ_B.</summary>
    public Tensor<T> RunningMean { get; } = runningMean;
    /// <summary>The running variance, one value per feature; training updates it in place with the batch's unbiased variance σ²_B·N/(N − 1).</summary>
    public Tensor<T> RunningVar { get; } = runningVar;
    /// <summary>ε added to the variance before the square root (PyTorch's default 1e-5).</summary>
    public double Eps { get; } = eps;
    /// <summary>The weight of the current batch in the running statistics' update (PyTorch's default 0.1), in [0, 1].</summary>
    public double Momentum { get; } = momentum;
    /// <summary>Training or evaluation, read on every forward pass; shared with the layer that owns the statistics.</summary>
    public LayerMode Mode { get; init; } = new();
}

/// <summary>A batch norm in training mode on a batch of one sample, which has no variance (PyTorch refuses it too).</summary>
public sealed class BatchTooSmallException(string message) : ArgumentException(message);

/// <summary>
/// Batch normalisation over the batch, per feature, with an optional scale γ and shift β (PyTorch's BatchNorm1d on
/// batch × features). Training: μ and σ² (biased) of each feature over the batch normalise, and the running statistics
/// update; evaluation: the running statistics normalise. Inputs: x, or x, γ, β.
/// </summary>
public sealed class BatchNormOp<T>(BatchNormStatistics<T> statistics) : Op<T>, IReferenceBackward<T>, IBatchCoupling where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _xhat;
    private T[] _rstd = [];
    private T[] _mean = [];
    private bool _trained;

    /// <summary>The running statistics the op reads in evaluation and updates in training, and the mode that chooses.</summary>
    public BatchNormStatistics<T> Statistics { get; } = statistics;
    /// <inheritdoc/>
    public override string Name => "batch_norm";
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["x", "γ", "β"];
    /// <inheritdoc/>
    public override string Formula => Statistics.Mode.Training
        ? "y = γ ⊙ x̂ + β, x̂ = (x − μ_B)/σ̂, σ̂ = √(σ²_B + ε), μ_B = (1/N)·Σ_batch x, σ²_B = (1/N)·Σ_batch (x − μ_B)² per feature"
        : "y = γ ⊙ x̂ + β, x̂ = (x − running_mean)/σ̂, σ̂ = √(running_var + ε) per feature";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => Statistics.Mode.Training
        ?
        [
            "dx = (1/σ̂)·(dx̂ − mean_batch(dx̂) − x̂ ⊙ mean_batch(dx̂ ⊙ x̂)), dx̂ = dy ⊙ γ   (mean_batch over the N samples of each feature: the samples are coupled through μ_B and σ²_B)",
            "dγ = Σ_batch dy ⊙ x̂",
            "dβ = Σ_batch dy",
        ]
        :
        [
            "dx = dx̂/σ̂, dx̂ = dy ⊙ γ   (the running statistics are constants: each sample on its own)",
            "dγ = Σ_batch dy ⊙ x̂",
            "dβ = Σ_batch dy",
        ];

    /// <summary>Whether the last forward pass normalised with the batch's statistics, which couples the rows of the batch.</summary>
    public bool CouplesBatch => _trained;

    /// <inheritdoc/>
    public string CouplingReason =>
        "batch norm in training mode couples the samples: each sample is normalised with the batch's mean and variance, so a sample's gradient depends on the other samples";

    /// <inheritdoc/>
    public IReadOnlyList<string> LocalSymbols => ["x̂", "μ", "σ²", "σ̂", "dx̂"];

    /// <summary>
    /// The rule recomputed in float64: in training from the batch's μ_B and σ²_B (of x), in evaluation from the running
    /// statistics; then dx̂ = dy ⊙ γ and the rule for the operand.
    /// </summary>
    public ReferenceGradient ReferenceBackward(Var<T>[] inputs, Tensor<double> dy, int which)
    {
        var x = Reference.ToDouble(inputs[0].Value);
        bool training = _trained;
        Tensor<double> mean, sigmaHat, xhat;
        if (training) (mean, sigmaHat, xhat) = Reference.Normalize(x, Statistics.Eps, rows: false);
        else
        {
            mean = Reference.ToDouble(Statistics.RunningMean);
            sigmaHat = Reference.ToDouble(Statistics.RunningVar);
            for (int j = 0; j < sigmaHat.Length; j++) sigmaHat.Data[j] = Math.Sqrt(sigmaHat.Data[j] + Statistics.Eps);
            int f = mean.Length;
            xhat = new Tensor<double>(x.ShapeArray);
            for (int k = 0; k < x.Length; k++) xhat.Data[k] = (x.Data[k] - mean.Data[k % f]) / sigmaHat.Data[k % f];
        }
        var xhatValue = new ReferenceValue("x̂", training ? "(x − μ_B)/σ̂, normalised with the batch's statistics" : "(x − running_mean)/σ̂", xhat);
        switch (which)
        {
            case 0:
                var dxhat = Reference.ScaledByGamma(dy, inputs);
                Tensor<double> dx;
                if (training) dx = Reference.NormalizeBackward(dxhat, xhat, sigmaHat, rows: false);
                else
                {
                    dx = new Tensor<double>(dxhat.ShapeArray);
                    for (int k = 0; k < dx.Length; k++) dx.Data[k] = dxhat.Data[k] / sigmaHat.Data[k % sigmaHat.Length];
                }
                return new(dx,
                [
                    new(training ? "μ_B" : "running_mean", training ? "each feature's mean over the batch" : "the running mean (a constant here)", mean),
                    new("σ̂", training ? "√(σ²_B + ε) of each feature (σ²_B the biased variance over the batch)" : "√(running_var + ε) of each feature", sigmaHat),
                    xhatValue,
                    new("dx̂", inputs.Length > 1 ? "dy ⊙ γ" : "dy (no γ)", dxhat),
                ], training
                    ? "training mode couples the samples of the batch: every row's gradient depends on the whole batch through μ_B and σ²_B (the mean_batch terms)"
                    : "evaluation mode: the running statistics are constants, so each row's gradient depends on that row alone");
            case 1:
                return new(Reference.ColumnSums(Reference.Hadamard(dy, xhat)), [xhatValue]);
            default:
                return new(Reference.ColumnSums(dy), []);
        }
    }

    /// <summary>The normalised input x̂ of the last forward pass, batch × features; null before the first.</summary>
    public Tensor<T>? Normalized => _xhat;

    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs)
    {
        var x = inputs[0].Value;
        if (x.Rank != 2) throw new ShapeMismatchException($"batch_norm: input is {x.ShapeString}, expected batch × features");
        if (x.Dim(1) != Statistics.RunningMean.Length)
            throw new ShapeMismatchException($"batch_norm: the input has {x.Dim(1)} features but the statistics have {Statistics.RunningMean.Length}");
        for (int k = 1; k < inputs.Length; k++)
            if (inputs[k].Value.Rank != 1 || inputs[k].Value.Length != x.Dim(1))
                throw new ShapeMismatchException($"batch_norm: {InputNames[k]} is {inputs[k].ShapeString} but the input has {x.Dim(1)} features");
        return x.ShapeArray;
    }

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var x = inputs[0].Value;
        int n = x.Dim(0), f = x.Dim(1);
        if (_xhat is null || _xhat.Dim(0) != n || _xhat.Dim(1) != f) _xhat = new Tensor<T>(n, f);
        if (_rstd.Length != f) { _rstd = new T[f]; _mean = new T[f]; }
        var xs = x.Data;
        var xh = _xhat.Data;
        T eps = T.CreateChecked(Statistics.Eps);
        _trained = Statistics.Mode.Training;
        var rm = Statistics.RunningMean.Data;
        var rv = Statistics.RunningVar.Data;
        if (_trained)
        {
            if (n < 2)
                throw new BatchTooSmallException("batchnorm in training mode needs a batch of at least 2 samples (a batch of 1 has no variance)");
            T invN = T.One / T.CreateChecked(n);
            Span<T> mean = _mean, variance = _rstd;
            mean.Clear();
            variance.Clear();
            for (int i = 0; i < n; i++) TensorPrimitives.Add(xs.Slice(i * f, f), mean, mean);
            TensorPrimitives.Multiply(mean, invN, mean);
            // the centred rows go to x̂ first (and are scaled in place below)
            for (int i = 0; i < n; i++)
            {
                var hr = xh.Slice(i * f, f);
                TensorPrimitives.Subtract(xs.Slice(i * f, f), mean, hr);
                TensorPrimitives.MultiplyAdd(hr, hr, variance, variance);
            }
            T m = T.CreateChecked(Statistics.Momentum), unbias = T.CreateChecked(n) / T.CreateChecked(n - 1);
            for (int j = 0; j < f; j++)
            {
                T v = variance[j] * invN;
                rm[j] = (T.One - m) * rm[j] + m * mean[j];
                rv[j] = (T.One - m) * rv[j] + m * v * unbias;
                variance[j] = T.One / T.Sqrt(v + eps);
            }
            for (int i = 0; i < n; i++)
            {
                var hr = xh.Slice(i * f, f);
                TensorPrimitives.Multiply(hr, _rstd, hr);
            }
        }
        else
        {
            rm.CopyTo(_mean);
            Normalization.ReciprocalStd(rv, eps, _rstd);
            Normalization.NormalizeColumns(xs, _mean, _rstd, xh, n, f);
        }
        Normalization.Affine(xh, inputs.Length > 1 ? inputs[1].Value.Data : default, inputs.Length > 2 ? inputs[2].Value.Data : default,
            output.Data, n, f);
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        int n = _xhat!.Dim(0), f = _xhat.Dim(1);
        var dy = output.Grad.Data;
        var xh = _xhat.Data;
        Normalization.AffineBackward(inputs, dy, xh, n, f);
        if (!inputs[0].RequiresGrad) return;
        var g = inputs[0].GradTarget(out bool acc).Data;
        ReadOnlySpan<T> gamma = inputs.Length > 1 ? inputs[1].Value.Data : default;
        var row = Zeroed(ref _row, f);
        if (!_trained)
        {
            // dx = dy ⊙ γ ⊙ rstd: the running statistics are constants
            for (int i = 0; i < n; i++)
            {
                ReadOnlySpan<T> d = dy.Slice(i * f, f);
                var gr = g.Slice(i * f, f);
                if (!gamma.IsEmpty) { TensorPrimitives.Multiply(d, gamma, row); d = row; }
                if (acc) TensorPrimitives.MultiplyAdd(d, _rstd, gr, gr);
                else TensorPrimitives.Multiply(d, _rstd, gr);
            }
            return;
        }
        // per feature: Σ_batch dx̂ and Σ_batch dx̂ ⊙ x̂
        T[] sum = Zeroed(ref _sum, f), dot = Zeroed(ref _dot, f);
        for (int i = 0; i < n; i++)
        {
            ReadOnlySpan<T> d = dy.Slice(i * f, f);
            if (!gamma.IsEmpty) { TensorPrimitives.Multiply(d, gamma, row); d = row; }
            TensorPrimitives.Add(d, sum, sum);
            TensorPrimitives.MultiplyAdd(d, xh.Slice(i * f, f), dot, dot);
        }
        T invN = T.One / T.CreateChecked(n);
        TensorPrimitives.Multiply(sum, invN, sum);
        TensorPrimitives.Multiply(dot, -invN, dot);
        var tmp = Zeroed(ref _tmp, f);
        for (int i = 0; i < n; i++)
        {
            ReadOnlySpan<T> d = dy.Slice(i * f, f);
            if (!gamma.IsEmpty) { TensorPrimitives.Multiply(d, gamma, row); d = row; }
            var gr = g.Slice(i * f, f);
            // dx = rstd ⊙ (dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂))
            TensorPrimitives.MultiplyAdd(xh.Slice(i * f, f), dot, d, tmp);
            TensorPrimitives.Subtract(tmp, sum, tmp);
            if (acc) TensorPrimitives.MultiplyAdd(tmp, _rstd, gr, gr);
            else TensorPrimitives.Multiply(tmp, _rstd, gr);
        }
    }

    private T[] _sum = [], _dot = [], _row = [], _tmp = [];

    /// <summary>A zeroed per-feature scratch array, allocated once.</summary>
    private static T[] Zeroed(ref T[] scratch, int f)
    {
        if (scratch.Length != f) scratch = new T[f];
        else scratch.AsSpan().Clear();
        return scratch;
    }
}

/// <summary>
/// Where a dropout layer's masks come from: a fixed mask (problem files give one, so the answer is reproducible), or
/// draws from a counter-based generator keyed by (seed, draw, element), so a run is the same for a seed whatever the
/// threads, and a resumed run continues the same sequence from its draw count.
/// </summary>
public sealed class DropoutMask<T>(double p) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The probability that a unit is dropped, in [0, 1).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Thrown at construction when p is outside [0, 1).</exception>
    public double P { get; } = p >= 0 && p < 1 ? p : throw new ArgumentOutOfRangeException(nameof(p), $"dropout p = {p} is outside [0, 1)");
    /// <summary>Training (draw and apply masks) or evaluation (pass x through); read on every forward pass.</summary>
    public LayerMode Mode { get; init; } = new();
    /// <summary>A batch × features mask of 0 and 1 used in place of random draws; null: draw.</summary>
    public Tensor<T>? Fixed { get; set; }
    /// <summary>The generator's key: the same seed and draw count give the same mask on any machine and thread count.</summary>
    public ulong Seed { get; set; }
    /// <summary>How many masks were drawn so far (each training forward pass draws one).</summary>
    public long Draws { get; set; }

    /// <summary>Fills <paramref name="mask"/> with 0 or 1/(1 − p) for each element: the fixed mask, or the next draw.</summary>
    public void Fill(Span<T> mask)
    {
        T scale = T.One / (T.One - T.CreateChecked(P));
        if (Fixed is { } fixedMask)
        {
            if (fixedMask.Length != mask.Length)
                throw new ShapeMismatchException($"dropout: the mask has {fixedMask.Length} values but the input has {mask.Length}");
            TensorPrimitives.Multiply<T>(fixedMask.Data, scale, mask);
            return;
        }
        // keep an element when its uniform draw u in [0, 1) is ≥ p (PyTorch's bernoulli(1 − p)); each 64-bit hash gives
        // two 32-bit draws, which halves the cost of the mask (p is resolved to 2⁻³²)
        ulong threshold = (ulong)Math.Min(P * 4294967296.0, 4294967295.0);   // p·2³²
        ulong stream = Mix(Seed ^ Mix((ulong)Draws + 0x632BE59BD9B4E019UL));
        Draws++;
        int i = 0;
        for (; i + 1 < mask.Length; i += 2)
        {
            ulong h = Mix(stream + (ulong)(i >> 1) * 0x9E3779B97F4A7C15UL);
            mask[i] = (h & 0xFFFFFFFFUL) >= threshold ? scale : T.Zero;
            mask[i + 1] = (h >> 32) >= threshold ? scale : T.Zero;
        }
        if (i < mask.Length) mask[i] = (Mix(stream + (ulong)(i >> 1) * 0x9E3779B97F4A7C15UL) & 0xFFFFFFFFUL) >= threshold ? scale : T.Zero;
    }

    /// <summary>SplitMix64's finaliser: a bijective 64-bit mix.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// Inverted dropout: in training y = x ⊙ m/(1 − p) with m a mask of 0 and 1 (drawn, or fixed); in evaluation y = x.
/// </summary>
public sealed class DropoutOp<T>(DropoutMask<T> mask) : Op<T>, IReferenceBackward<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _scaledMask;
    private bool _trained;

    /// <summary>Where the op's masks come from, and its p and mode.</summary>
    public DropoutMask<T> Mask { get; } = mask;
    /// <inheritdoc/>
    public override string Name => "dropout";
    /// <inheritdoc/>
    public override IReadOnlyList<string> InputNames => ["x"];
    /// <inheritdoc/>
    public override string Formula => Mask.Mode.Training ? $"y = x ⊙ m/(1 − p), p = {Mask.P}, m ∈ {{0, 1}}" : "y = x (dropout is off in evaluation)";
    /// <inheritdoc/>
    public override IReadOnlyList<string> GradFormulas => [Mask.Mode.Training ? "dx = dy ⊙ m/(1 − p)" : "dx = dy"];

    /// <summary>m/(1 − p) of the last training forward pass.</summary>
    public Tensor<T>? ScaledMask => _scaledMask;

    /// <inheritdoc/>
    public IReadOnlyList<string> LocalSymbols => ["m"];

    /// <summary>dx = dy ⊙ m/(1 − p) in float64 with the mask of the last forward pass (the fixed one, or the draw); dx = dy in evaluation.</summary>
    public ReferenceGradient ReferenceBackward(Var<T>[] inputs, Tensor<double> dy, int which)
    {
        if (!_trained) return new(dy.Clone(), [], "dropout is off in evaluation: the gradient passes through unchanged");
        double keep = 1 - Mask.P;
        Tensor<double> m;
        if (Mask.Fixed is { } fixedMask) m = Reference.ToDouble(fixedMask).Reshape(dy.ShapeArray);
        else
        {
            m = Reference.ToDouble(_scaledMask!);
            for (int k = 0; k < m.Length; k++) m.Data[k] = m.Data[k] != 0 ? 1 : 0;
        }
        var dx = new Tensor<double>(dy.ShapeArray);
        for (int k = 0; k < dx.Length; k++) dx.Data[k] = dy.Data[k] * m.Data[k] / keep;
        return new(dx,
        [
            new("m", Mask.Fixed is null ? "the mask drawn in the forward pass (1 keeps a unit, 0 drops it)" : "the problem's fixed mask (1 keeps a unit, 0 drops it)", m),
            new("1/(1 − p)", $"the scale of the kept units, p = {Mask.P.ToString(System.Globalization.CultureInfo.InvariantCulture)}", new Tensor<double>([1 / keep], 1, 1)),
        ], "a dropped unit passes no gradient; a kept one passes dy scaled by 1/(1 − p), as in the forward pass");
    }

    /// <inheritdoc/>
    public override int[] OutputShape(Var<T>[] inputs) => inputs[0].Value.ShapeArray;

    /// <inheritdoc/>
    public override void Forward(ComputeContext context, Var<T>[] inputs, Tensor<T> output)
    {
        var x = inputs[0].Value.Data;
        _trained = Mask.Mode.Training;
        if (!_trained)
        {
            x.CopyTo(output.Data);
            return;
        }
        if (_scaledMask is null || _scaledMask.Length != x.Length) _scaledMask = new Tensor<T>(inputs[0].Value.ShapeArray);
        Mask.Fill(_scaledMask.Data);
        TensorPrimitives.Multiply<T>(x, _scaledMask.Data, output.Data);
    }

    /// <inheritdoc/>
    public override void Backward(ComputeContext context, Var<T>[] inputs, Var<T> output)
    {
        if (!inputs[0].RequiresGrad) return;
        var g = inputs[0].GradTarget(out bool acc).Data;
        var dy = output.Grad.Data;
        if (!_trained)
        {
            if (acc) TensorPrimitives.Add<T>(g, dy, g);
            else dy.CopyTo(g);
            return;
        }
        if (acc) TensorPrimitives.MultiplyAdd<T>(dy, _scaledMask!.Data, g, g);
        else TensorPrimitives.Multiply<T>(dy, _scaledMask!.Data, g);
    }
}

/// <summary>The arithmetic the normalisation ops share.</summary>
internal static class Normalization
{
    /// <summary>x̂ = (x − μ)·rstd for each row, μ and the biased σ² over the row; rstd = 1/√(σ² + ε) per row.</summary>
    public static void NormalizeRows<T>(ReadOnlySpan<T> x, Span<T> xhat, Span<T> rstd, int n, int f, T eps) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T invF = T.One / T.CreateChecked(f);
        for (int i = 0; i < n; i++)
        {
            var row = x.Slice(i * f, f);
            var hr = xhat.Slice(i * f, f);
            T mean = TensorPrimitives.Sum(row) * invF;
            TensorPrimitives.Subtract(row, mean, hr);
            T r = T.One / T.Sqrt(TensorPrimitives.SumOfSquares<T>(hr) * invF + eps);
            rstd[i] = r;
            TensorPrimitives.Multiply(hr, r, hr);
        }
    }

    /// <summary>rstd = 1/√(var + ε) per feature (evaluation batch norm's scale from the running variance).</summary>
    public static void ReciprocalStd<T>(ReadOnlySpan<T> variance, T eps, Span<T> rstd) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int j = 0; j < variance.Length; j++) rstd[j] = T.One / T.Sqrt(variance[j] + eps);
    }

    /// <summary>x̂ = (x − mean) ⊙ rstd per feature, for each of the n rows (x̂ may be x).</summary>
    public static void NormalizeColumns<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd, Span<T> xhat, int n, int f)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < n; i++)
        {
            var hr = xhat.Slice(i * f, f);
            TensorPrimitives.Subtract(x.Slice(i * f, f), mean, hr);
            TensorPrimitives.Multiply(hr, rstd, hr);
        }
    }

    /// <summary>y = γ ⊙ x̂ + β per feature (γ, β empty: y = x̂).</summary>
    public static void Affine<T>(ReadOnlySpan<T> xhat, ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, Span<T> y, int n, int f)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (gamma.IsEmpty) { xhat.CopyTo(y); return; }
        for (int i = 0; i < n; i++)
        {
            var hr = xhat.Slice(i * f, f);
            var yr = y.Slice(i * f, f);
            if (beta.IsEmpty) TensorPrimitives.Multiply(hr, gamma, yr);
            else TensorPrimitives.MultiplyAdd(hr, gamma, beta, yr);
        }
    }

    /// <summary>dγ = Σ_rows dy ⊙ x̂ and dβ = Σ_rows dy, for whichever of inputs[1] and inputs[2] require them.</summary>
    public static void AffineBackward<T>(Var<T>[] inputs, ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int n, int f)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int k = 1; k < inputs.Length; k++)
        {
            if (!inputs[k].RequiresGrad) continue;
            var g = inputs[k].GradTarget(out bool acc).Data;
            if (!acc) g.Clear();
            for (int i = 0; i < n; i++)
            {
                var dr = dy.Slice(i * f, f);
                if (k == 1) TensorPrimitives.MultiplyAdd(dr, xhat.Slice(i * f, f), g, g);
                else TensorPrimitives.Add(dr, g, g);
            }
        }
    }
}
