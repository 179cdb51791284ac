using Backprop.Core;

namespace Backprop.Tests;

/// <summary>The arrays data sets are loaded into: the asked length, and on Linux with transparent huge pages in the
/// "madvise" or "always" mode, memory mapped in 2 MiB pages once written (a fault per 2 MiB instead of per 4 KiB).</summary>
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
    public void OnLinuxWithHugePagesTheWrittenArrayIsMappedInHugePages()
    {
        const string mode = "/sys/kernel/mm/transparent_hugepage/enabled";
        if (!OperatingSystem.IsLinux() || !File.Exists(mode) || File.ReadAllText(mode).Contains("[never]")) return;   // no huge pages to ask for here
        long before = AnonHugePagesKiB();
        var a = LargeArrays.Uninitialized<byte>(64 << 20);
        Array.Fill(a, (byte)1);
        long after = AnonHugePagesKiB();
        GC.KeepAlive(a);
        Assert.True(after - before >= 2048, $"AnonHugePages grew by {after - before} KiB for a 64 MiB array written once");
    }

    private static long AnonHugePagesKiB()
    {
        foreach (var line in File.ReadLines("/proc/self/smaps_rollup"))
            if (line.StartsWith("AnonHugePages:"))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return 0;
    }
}
