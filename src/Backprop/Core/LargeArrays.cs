using System.Runtime.InteropServices;

namespace Backprop.Core;

/// <summary>
/// Arrays of data sets (decoded images, split copies, decompressed files): hundreds of megabytes written once, front
/// to back. The first write to each 4 KiB page costs a page fault, and on this project's VMs a fault costs 11.7 µs:
/// loading MNIST took 124,000 of them (1.45 s of a 2.5 s one-epoch run). On Linux these arrays ask for transparent huge
/// pages (madvise MADV_HUGEPAGE, which the default THP mode "madvise" honours), so a fault maps 2 MiB, and they skip the
/// runtime's zeroing, since every element is written before it is read.
/// <para>Only data sets ask: session 10 tried tensors, optimizer state and the GEMM's packing buffers too (the next
/// 6,500 of a one-epoch MNIST run's 17,000 faults, perf's page-fault event), measured 2,200 fewer faults (about 30 ms),
/// and took it back as a precaution: in a CI run with it a training process did not stop within 30 s of a Ctrl+C (not
/// reproduced, cause not found), and a huge-page fault may compact memory first (THP defrag "madvise"), which can stall.</para>
/// </summary>
internal static partial class LargeArrays
{
    private const long HugePage = 2 << 20;
    private const int MadvHugePage = 14;   // <sys/mman.h>

    /// <summary>An array of <paramref name="length"/> elements whose contents are undefined until written: the caller writes every one.</summary>
    /// <param name="length">The number of elements.</param>
    /// <param name="pinned">Whether the array goes to the pinned-object heap (for buffers that kernels read through pointers).</param>
    public static T[] Uninitialized<T>(long length, bool pinned = false) where T : unmanaged
    {
        var array = GC.AllocateUninitializedArray<T>(checked((int)length), pinned);
        AdviseHugePages(array);
        return array;
    }

    private static unsafe void AdviseHugePages<T>(T[] array) where T : unmanaged
    {
        long bytes = (long)array.Length * sizeof(T);
        // Any array that holds a whole aligned huge page gains: on this project's Zen 5 VM (a PVM guest), touching 48 MiB
        // took 180 ms in 4 KiB faults (14.6 µs each) and 13–94 ms in 2 MiB ones (C, mmap + madvise). Until session 10
        // only arrays of 8 MiB and more asked, which left MNIST's test images (7.8 MB) and validation rows (3.9 MB) to
        // about 2,900 small faults a run.
        if (!OperatingSystem.IsLinux() || bytes < HugePage) return;
        // the large-object heap does not move its objects (unless a program asks it to compact), and the advice is only
        // a hint about the pages of this range: if the array moved, the hint would stay with the old range, harmlessly
        fixed (T* p = array)
        {
            long start = ((long)p + HugePage - 1) & ~(HugePage - 1), end = ((long)p + bytes) & ~(HugePage - 1);
            if (end > start) _ = madvise((nint)start, (nuint)(end - start), MadvHugePage);   // refused (no THP): 4 KiB pages, as before
        }
    }

    [LibraryImport("libc")]
    private static partial int madvise(nint address, nuint length, int advice);
}
