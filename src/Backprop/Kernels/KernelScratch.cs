using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Backprop.Kernels;

/// <summary>
/// One thread's scratch memory in one <see cref="ComputeContext"/>: the GEMM packing buffers (64-byte aligned, pinned,
/// grown only when a larger one is needed) and the descriptions of the parallel jobs the thread submits. It holds no
/// reference to its context between calls (a job keeps its context only while it runs): the context's thread-local
/// store holds this, so a reference back would keep every context a long-lived thread ever used alive.
/// Allocated once; a warm call allocates nothing.
/// </summary>
internal sealed unsafe class KernelScratch
{
    private byte[]? _a, _b, _stepsA, _stepsB;
    private byte* _aPtr, _bPtr, _stepsAPtr, _stepsBPtr;

    // Jobs by element type: float and double (the element types of the fast paths) have their own slot, so a thread
    // that alternates between them keeps both; any other type shares the last slot.
    private object? _gemmFloat, _gemmDouble, _gemmOther, _gatherFloat, _gatherDouble, _gatherOther, _packedFloat, _packedDouble, _packedOther;

    /// <summary>The packed A block: <paramref name="length"/> values of T.</summary>
    public T* PackedA<T>(long length) where T : unmanaged => (T*)Get(ref _a, ref _aPtr, length * sizeof(T));

    /// <summary>The packed B block: <paramref name="length"/> values of T.</summary>
    public T* PackedB<T>(long length) where T : unmanaged => (T*)Get(ref _b, ref _bPtr, length * sizeof(T));

    /// <summary>Lists of non-zero depth steps, one list of up to kc entries per packed micro-panel of A.</summary>
    public int* StepsA(long length) => (int*)Get(ref _stepsA, ref _stepsAPtr, length * sizeof(int));

    /// <summary>Lists of non-zero depth steps, one per packed panel of B.</summary>
    public int* StepsB(long length) => (int*)Get(ref _stepsB, ref _stepsBPtr, length * sizeof(int));

    public GemmJob<T> GemmJob<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        ref object? slot = ref typeof(T) == typeof(float) ? ref _gemmFloat : ref typeof(T) == typeof(double) ? ref _gemmDouble : ref _gemmOther;
        if (slot is GemmJob<T> job) return job;
        return (GemmJob<T>)(slot = new GemmJob<T>());
    }

    public PackedGemmJob<T> PackedGemmJob<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        ref object? slot = ref typeof(T) == typeof(float) ? ref _packedFloat : ref typeof(T) == typeof(double) ? ref _packedDouble : ref _packedOther;
        if (slot is PackedGemmJob<T> job) return job;
        return (PackedGemmJob<T>)(slot = new PackedGemmJob<T>());
    }

    public RowGather.GatherJob<T> GatherJob<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        ref object? slot = ref typeof(T) == typeof(float) ? ref _gatherFloat : ref typeof(T) == typeof(double) ? ref _gatherDouble : ref _gatherOther;
        if (slot is RowGather.GatherJob<T> job) return job;
        return (RowGather.GatherJob<T>)(slot = new RowGather.GatherJob<T>());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* Get(ref byte[]? array, ref byte* ptr, long bytes)
    {
        if (array == null || array.Length < bytes + 64) return Grow(ref array, ref ptr, bytes + 64);
        return ptr;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static byte* Grow(ref byte[]? array, ref byte* ptr, long bytes)
    {
        if (bytes > Array.MaxLength) throw new OutOfMemoryException("GEMM packing buffer too large");
        array = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        nint p = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        ptr = (byte*)((p + 63) & ~(nint)63);
        return ptr;
    }
}
