using System.Numerics;

namespace Backprop.Nn;

/// <summary>One layer's row of a <see cref="ModelSummary"/>.</summary>
/// <param name="Index">The layer's position in the network, from 0.</param>
/// <param name="Kind">The layer's kind name, e.g. "dense".</param>
/// <param name="Description">The layer's one-line <see cref="ILayer{T}.Describe"/>.</param>
/// <param name="Activation">The name of the activation applied last ("identity" for none).</param>
/// <param name="Inputs">Features per sample in.</param>
/// <param name="Outputs">Features per sample out.</param>
/// <param name="Parameters">Trained values (elements of all its parameters).</param>
/// <param name="Buffers">Kept, untrained values (elements of all its buffers, e.g. running statistics).</param>
/// <param name="LayerFlops">Floating-point operations per sample of the kind's own forward pass (<see cref="LayerKind.ForwardFlops"/>).</param>
/// <param name="ActivationFlops">Floating-point operations per sample of the activation (<see cref="ModelSummary.ActivationFlopsRule"/>).</param>
/// <param name="FlopsRule">How the kind counts <paramref name="LayerFlops"/> (<see cref="LayerKind.FlopsRule"/>).</param>
public sealed record LayerSummary(int Index, string Kind, string Description, string Activation, int Inputs, int Outputs,
    long Parameters, long Buffers, long LayerFlops, long ActivationFlops, string FlopsRule)
{
    /// <summary>Floating-point operations per sample at inference: the kind's own (<see cref="LayerFlops"/>) plus the activation's.</summary>
    public long Flops => LayerFlops + ActivationFlops;
}

/// <summary>
/// The memory training takes at a batch size, in bytes, under the assumptions <see cref="Assumptions"/> states:
/// parameters, their gradients, the optimizer's state (<see cref="OptimizerStates"/> copies of the parameters: 2 for
/// Adam), the buffers (running statistics) and the activations the tape keeps for a batch with their gradients.
/// </summary>
public sealed record TrainingMemory(int Batch, int OptimizerStates, int BytesPerValue, long ParameterBytes, long GradientBytes,
    long OptimizerBytes, long BufferBytes, long ActivationValuesPerSample, long ActivationBytes)
{
    /// <summary>Everything counted: parameters, gradients, optimizer state, buffers and activations, in bytes.</summary>
    public long TotalBytes => ParameterBytes + GradientBytes + OptimizerBytes + BufferBytes + ActivationBytes;

    /// <summary>What the estimate counts and leaves out, in one sentence for summaries.</summary>
    public string Assumptions =>
        $"{BytesPerValue}-byte values; parameters + gradients (1×) + optimizer state ({OptimizerStates}× the parameters) + buffers; "
        + $"activations: the input, each layer's output and, where an activation follows, its pre-activation ({ActivationValuesPerSample} values per sample), "
        + $"each with its gradient, × batch {Batch}; workspace of the kernels not counted";
}

/// <summary>
/// What a network is made of and costs, layer by layer: kind, output width, parameter and buffer counts and FLOPs per
/// sample at inference (each kind counts its own, <see cref="LayerKind.ForwardFlops"/>; an activation counts 1 per
/// element, exp and tanh as one), and the totals. Parameter counts agree with PyTorch's
/// <c>sum(p.numel() for p in model.parameters())</c>; buffers are the running statistics (PyTorch's
/// num_batches_tracked is not kept).
/// </summary>
public sealed record ModelSummary(int Inputs, IReadOnlyList<LayerSummary> Layers)
{
    /// <summary>How an activation's FLOPs are counted.</summary>
    public const string ActivationFlopsRule = "1 per element (exp, tanh and erf counted as one)";

    /// <summary>The network's output width: the last layer's (the input width when there are no layers).</summary>
    public int Outputs => Layers.Count == 0 ? Inputs : Layers[^1].Outputs;
    /// <summary>Trained values of all layers together.</summary>
    public long Parameters => Layers.Sum(l => l.Parameters);
    /// <summary>Kept, untrained values of all layers together.</summary>
    public long Buffers => Layers.Sum(l => l.Buffers);
    /// <summary>Floating-point operations per sample at inference, all layers and activations together.</summary>
    public long Flops => Layers.Sum(l => l.Flops);

    /// <summary>The values per sample the tape keeps in a training step: the input, each output, and the pre-activation where an activation follows.</summary>
    public long ActivationValuesPerSample => Inputs + Layers.Sum(l => (long)l.Outputs * (l.Activation == "identity" ? 1 : 2));

    /// <summary>The summary of <paramref name="net"/>; kinds are found in <paramref name="kinds"/> (default: the built-ins).</summary>
    public static ModelSummary Of<T>(Sequential<T> net, LayerKindRegistry? kinds = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(net);
        kinds ??= LayerKindRegistry.Default;
        var rows = new List<LayerSummary>();
        for (int i = 0; i < net.Layers.Count; i++)
        {
            var l = net.Layers[i];
            var kind = kinds.Find(l.Kind);
            var shape = new LayerShape(l.Inputs, l.Outputs, l.MainBias() is not null) { Settings = l.Settings };
            long own = kind?.ForwardFlops(shape) ?? 0;
            long act = l.Activation.IsIdentity ? 0 : l.Outputs;
            rows.Add(new LayerSummary(i, l.Kind, l.Describe(), l.Activation.Name, l.Inputs, l.Outputs,
                l.Parameters.Sum(p => (long)p.Value.Value.Length), l.Buffers.Sum(b => (long)b.Value.Length), own, act,
                kind?.FlopsRule ?? "not counted"));
        }
        return new ModelSummary(net.Inputs, rows);
    }

    /// <summary>The memory of training at <paramref name="batch"/> with an optimizer keeping <paramref name="optimizerStates"/> copies of the parameters.</summary>
    public TrainingMemory Memory(int batch, int optimizerStates, int bytesPerValue = sizeof(float))
    {
        if (batch < 1) throw new ArgumentException($"batch must be at least 1, not {batch}");
        if (optimizerStates < 0) throw new ArgumentException($"optimizer states must be 0 or more, not {optimizerStates}");
        long p = Parameters * bytesPerValue;
        long values = ActivationValuesPerSample;
        return new TrainingMemory(batch, optimizerStates, bytesPerValue, p, p, p * optimizerStates, Buffers * bytesPerValue,
            values, 2L * values * batch * bytesPerValue);
    }
}
