using System.Numerics;
using Backprop.Core;

namespace Backprop.Autodiff;

/// <summary>
/// A value in a computation graph: a leaf (parameter, input, constant) or the output of a recorded op.
/// Gradients are stored beside the value and reused between backward passes.
/// </summary>
public sealed class Var<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _grad;
    private bool _gradValid;

    internal Var(Tensor<T> value, bool requiresGrad, string? name, Tape<T>? tape, Op<T>? op, Var<T>[] inputs)
    {
        Value = value;
        RequiresGrad = requiresGrad;
        Name = name;
        Tape = tape;
        Op = op;
        Inputs = inputs;
    }

    /// <summary>A leaf that belongs to no tape (a parameter); it may take part in any number of tapes.</summary>
    public static Var<T> Parameter(Tensor<T> value, string? name = null) => new(value, true, name, null, null, []);

    /// <summary>A leaf that never receives a gradient.</summary>
    public static Var<T> Constant(Tensor<T> value, string? name = null) => new(value, false, name, null, null, []);

    /// <summary>
    /// The current value. A recorded op's output is recomputed in place on every <see cref="Tape{T}.Forward"/>; a leaf's
    /// value is the caller's to change (an optimizer step writes a parameter's).
    /// </summary>
    public Tensor<T> Value { get; private set; }
    /// <summary>Whether a backward pass computes this value's gradient: true for parameters and for any op output that depends on one.</summary>
    public bool RequiresGrad { get; }
    /// <summary>The name that derivations and messages use ("layers.0.weight"); null for an unnamed value.</summary>
    public string? Name { get; set; }
    /// <summary>The tape that recorded or owns this value; null for a free leaf (<see cref="Parameter"/>, <see cref="Constant"/>).</summary>
    public Tape<T>? Tape { get; }
    /// <summary>The op whose output this is; null for a leaf.</summary>
    public Op<T>? Op { get; }
    /// <summary>The op's operands, in the order of <see cref="Op{T}.InputNames"/>; empty for a leaf.</summary>
    public IReadOnlyList<Var<T>> Inputs { get; }
    internal Var<T>[] InputArray => (Var<T>[])Inputs;
    /// <summary>Whether this value is a leaf (parameter, input or constant) rather than an op's output.</summary>
    public bool IsLeaf => Op is null;
    /// <summary>The shape of <see cref="Value"/> (and of <see cref="Grad"/>).</summary>
    public ReadOnlySpan<int> Shape => Value.Shape;
    /// <summary>The shape as text, "[2×3]".</summary>
    public string ShapeString => Value.ShapeString;

    /// <summary>The gradient from the last backward pass (zeros where the pass did not reach this value).</summary>
    public Tensor<T> Grad
    {
        get
        {
            _grad ??= new Tensor<T>(Value.ShapeArray);
            if (!_gradValid) { _grad.Fill(T.Zero); _gradValid = true; }
            return _grad;
        }
    }

    /// <summary>Whether the last backward pass wrote a gradient here.</summary>
    public bool HasGrad => _gradValid;

    internal void ResetGrad() => _gradValid = false;

    /// <summary>
    /// The buffer an op's backward rule writes this value's gradient into. When <paramref name="accumulate"/>
    /// is false the buffer holds stale data and must be overwritten, not added to: this saves zeroing every
    /// gradient before each pass.
    /// </summary>
    internal Tensor<T> GradTarget(out bool accumulate)
    {
        _grad ??= new Tensor<T>(Value.ShapeArray);
        accumulate = _gradValid;
        _gradValid = true;
        return _grad;
    }

    internal void EnsureGradBuffer() => _grad ??= new Tensor<T>(Value.ShapeArray);

    /// <summary>Makes <paramref name="storage"/> (a tensor of this value's shape) hold this value's gradient from now on, keeping what it held.</summary>
    internal void BindGradStorage(Tensor<T> storage)
    {
        if (!storage.SameShape(Value.Shape))
            throw new ShapeMismatchException($"gradient storage is {storage.ShapeString} but the value is {ShapeString}");
        if (_grad is not null && _gradValid) _grad.Data.CopyTo(storage.Data);
        _grad = storage;
    }

    /// <summary>Makes <paramref name="storage"/> (a tensor of this value's shape) hold this value from now on, with what it holds now.</summary>
    internal void BindValueStorage(Tensor<T> storage)
    {
        if (!storage.SameShape(Value.Shape))
            throw new ShapeMismatchException($"value storage is {storage.ShapeString} but the value is {ShapeString}");
        Value.Data.CopyTo(storage.Data);
        Value = storage;
    }

    /// <summary>Its name (or op), then its value as a tensor prints (<see cref="TensorFormat"/>): "W: Tensor[2×2]" and the numbers, as PyTorch prints a parameter.</summary>
    public override string ToString() => $"{Name ?? Op?.Name ?? "leaf"}: {TensorFormat.Format(Value)}";
}
