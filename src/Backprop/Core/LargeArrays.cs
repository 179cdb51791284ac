using System.Runtime.InteropServices;

namespace Backprop.Core;

/// <summary>
/// Arrays of data sets (decoded images, split copies, decompressed files): hundreds of megabytes written once, front
/// to back. The first write to each 4 KiB page costs a page fault, and on this project's VMs a fault costs 11.7 µs:
/// loading MNIST took 124,000 of them (1.45 s of a 2.5 s one-epoch run). On Linux these arrays ask for transparent huge
/// pages (madvise MADV_HUGEPAGE, which the default THP mode "madvise" honours), so a fault maps 2 MiB, and they skip the
/// runtime's zeroing, since every element is written before it is read.
/// </summary>
internal static partial class LargeArrays
{
    private const long HugePage = 2 << 20;
    private const int MadvHugePage = 14;   // <sys/mman.h>

    /// <summary>An array of <paramref name="length"/> elements whose contents are undefined until written: the caller writes every one.</summary>
    public static T[] Uninitialized<T>(long length) where T : unmanaged
    {
        var array = GC.AllocateUninitializedArray<T>(checked((int)length));
        AdviseHugePages(array);
        return array;
    }

    private static unsafe void AdviseHugePages<T>(T[] array) where T : unmanaged
    {
        long bytes = (long)array.Length * sizeof(T);
        if (!OperatingSystem.IsLinux() || bytes < 4 * HugePage) return;
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
