using System.Numerics;
using Backprop.Core;

namespace Backprop.Autodiff;

/// <summary>
/// The gradients of a set of parameters in one contiguous buffer: each parameter's <see cref="Var{T}.Grad"/> is a view
/// of its own slice, in parameter order. This is the seam for work that wants every gradient as one span: a collective
/// all-reduce across processes (one call, not one per tensor) or a fused optimizer pass.
/// </summary>
public sealed class GradientBuffer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[] _buffer;
    private readonly int[] _offsets;

    /// <summary>Allocates the buffer and binds every parameter's gradient to its slice (a gradient already computed is kept).</summary>
    public GradientBuffer(IReadOnlyList<Var<T>> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var distinct = new HashSet<Var<T>>(ReferenceEqualityComparer.Instance);
        _offsets = new int[parameters.Count + 1];
        long total = 0;
        for (int i = 0; i < parameters.Count; i++)
        {
            if (!distinct.Add(parameters[i])) throw new ArgumentException($"parameter {i} ({parameters[i]}) is listed twice", nameof(parameters));
            _offsets[i] = (int)total;
            total += parameters[i].Value.Length;
            if (total > Array.MaxLength) throw new ArgumentException($"the parameters hold {total} values, more than one buffer can");
        }
        _offsets[^1] = (int)total;
        _buffer = new T[total];
        Parameters = parameters.ToArray();
        for (int i = 0; i < Parameters.Count; i++)
            Parameters[i].BindGradStorage(Tensor<T>.View(_buffer, _offsets[i], Parameters[i].Value.ShapeArray));
    }

    /// <summary>The parameters whose gradients the buffer holds, in buffer order (see <see cref="OffsetOf"/>).</summary>
    public IReadOnlyList<Var<T>> Parameters { get; }

    /// <summary>Values in the buffer: the sum of the parameters' lengths.</summary>
    public int Length => _buffer.Length;

    /// <summary>Where parameter <paramref name="index"/>'s gradient starts in the buffer.</summary>
    public int OffsetOf(int index) => _offsets[index];

    /// <summary>
    /// Every gradient as one span, complete: a parameter that the last backward pass did not reach reads as zeros (its
    /// slice is zeroed now) rather than as the stale values left from an earlier pass.
    /// </summary>
    public Span<T> Complete()
    {
        foreach (var p in Parameters)
            if (!p.HasGrad) _ = p.Grad;
        return _buffer;
    }
}

/// <summary>
/// The values of a set of parameters in one contiguous buffer, laid out as <see cref="GradientBuffer{T}"/> lays out
/// their gradients: each parameter's <see cref="Var{T}.Value"/> becomes a view of its own slice. Work that passes all
/// the parameters at once then needs no copying: the all-gather of a sharded optimizer step writes every member's
/// updated block straight into the parameters (it went through the gradient buffer and back, two copies of the
/// blocks a step).
/// </summary>
public sealed class ParameterBuffer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[] _buffer;

    /// <summary>Allocates the buffer and moves every parameter's value into its slice, in the order and at the offsets of <paramref name="layout"/>.</summary>
    public ParameterBuffer(GradientBuffer<T> layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        _buffer = new T[layout.Length];
        Parameters = layout.Parameters;
        for (int i = 0; i < Parameters.Count; i++)
            Parameters[i].BindValueStorage(Tensor<T>.View(_buffer, layout.OffsetOf(i), Parameters[i].Value.ShapeArray));
    }

    /// <summary>The parameters whose values the buffer holds, in buffer order (that of the gradient buffer it was laid out by).</summary>
    public IReadOnlyList<Var<T>> Parameters { get; }

    /// <summary>Every parameter's value as one span.</summary>
    public Span<T> Values => _buffer;
}
