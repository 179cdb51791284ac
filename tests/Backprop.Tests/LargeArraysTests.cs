using Backprop.Core;

namespace Backprop.Tests;

/// <summary>The arrays data sets are loaded into: the asked length, and on Linux memory advised for transparent huge
/// pages (so that, in the default THP mode "madvise", a write faults in 2 MiB instead of 4 KiB).</summary>
public class LargeArraysTests
{
    [Fact]
    public void AnArrayOfTheAskedLengthThatTakesWhatIsWritten()
    {
        var a = LargeArrays.Uninitialized<float>(3_000_001);
        Assert.Equal(3_000_001, a.Length);
        for (int i = 0; i < a.Length; i++) a[i] = i;
        Assert.Equal(3_000_000f, a[^1]);
        Assert.Empty(LargeArrays.Uninitialized<byte>(0));
    }

    [Fact]
    public unsafe void OnLinuxTheArraysMemoryIsAdvisedForHugePages()
    {
        // Whether the pages then come as huge pages depends on the memory the runtime hands out (a region reused from
        // freed arrays is already mapped): what the array asks for is the advice, which the kernel shows as the
        // mapping's "hg" flag (MADV_HUGEPAGE) in /proc/self/smaps.
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/self/smaps") || !Directory.Exists("/sys/kernel/mm/transparent_hugepage"))
            return;   // not Linux, or a kernel built without transparent huge pages: nothing to advise
        var a = LargeArrays.Uninitialized<byte>(64 << 20);
        fixed (byte* p = a)
        {
            long inside = ((long)p + (4 << 20)) & ~((2L << 20) - 1);   // a 2 MiB boundary well inside the array
            var flags = VmFlagsAt(inside);
            Assert.True(flags is not null, $"no mapping holds 0x{inside:x}");
            Assert.Contains("hg", flags!.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        }
        GC.KeepAlive(a);
    }

    private static string? VmFlagsAt(long address)
    {
        bool inMapping = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash && long.TryParse(line.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber, null, out long start)
                && long.TryParse(line.AsSpan(dash + 1, space - dash - 1), System.Globalization.NumberStyles.HexNumber, null, out long end))
                inMapping = start <= address && address < end;
            else if (inMapping && line.StartsWith("VmFlags:")) return line["VmFlags:".Length..];
        }
        return null;
    }
}
