using System.Runtime.Intrinsics.X86;

namespace Backprop.Kernels;

/// <summary>
/// The data caches one core sees, as the CPU reports them: what <see cref="KernelTuning.FromCaches"/> derives the
/// GEMM's cache blocks from.
/// </summary>
/// <param name="L1dBytes">The level-1 data cache of one core.</param>
/// <param name="L1dWays">Its associativity (0: not reported; <see cref="KernelTuning.FromCaches"/> then takes 8).</param>
/// <param name="L2Bytes">The level-2 cache of one core (divided by the cores that share it).</param>
/// <param name="L2Ways">Its associativity (0: not reported, taken as 16).</param>
/// <param name="L3BytesPerCore">The level-3 cache divided by the cores that share it; 0 where there is none.</param>
/// <param name="L3Ways">Its associativity (0: none or not reported, taken as 16).</param>
/// <param name="Source">Where the figures came from: "cpuid" (x86 leaf 4 or 0x8000001D), "sysfs" (Linux elsewhere), "cpuid-legacy" (AMD's 0x80000005/6) or a test's name.</param>
public sealed record CpuCaches(long L1dBytes, int L1dWays, long L2Bytes, int L2Ways, long L3BytesPerCore, int L3Ways, string Source)
{
    /// <summary>This machine's caches, read once: from CPUID on x86, else from sysfs on Linux; null where neither says.</summary>
    public static CpuCaches? ThisCpu { get; } = Detect();

    private readonly record struct Level(int Number, long Bytes, int Ways, int SharedBy);

    private static CpuCaches? Detect()
    {
        // On a hybrid Intel CPU (Alder Lake and later) CPUID leaf 4 describes the core the calling thread runs on, a
        // P-core's 48 KiB L1d or an E-core's 32 KiB: kc, and so the bits of every product, would depend on where the
        // thread was scheduled. There sysfs's cpu0 answers, the same on every run, else the fixed blocks.
        if (IsHybrid()) return Try(() => FromLevels(ReadSysfs(), "sysfs"));
        // CPUID first: on x86 Linux builds sysfs's cache list from the same leaves, and reading it costs a process
        // some twenty file opens at start-up; sysfs for the others (Arm); AMD's older leaves last. Each source on its
        // own, so that one that fails leaves the next to answer.
        return Try(() => FromLevels(ReadCpuid(), "cpuid")) ?? Try(() => FromLevels(ReadSysfs(), "sysfs"))
            ?? Try(() => FromLevels(ReadAmdLegacy(), "cpuid-legacy"));
    }

    private static CpuCaches? Try(Func<CpuCaches?> source)
    {
        try { return source(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException
            or PlatformNotSupportedException or ArgumentException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>CPUID.(7,0):EDX[15], "hybrid": the package has cores of more than one type.</summary>
    private static bool IsHybrid() =>
        X86Base.IsSupported && X86Base.CpuId(0, 0).Eax >= 7 && (X86Base.CpuId(7, 0).Edx & (1 << 15)) != 0;

    /// <summary>The L1d, L2 and L3 of the data/unified caches listed, with the L3 shared out per core (the cores that
    /// share it are its sharers over the L1d's, which are one core's hardware threads).</summary>
    private static CpuCaches? FromLevels(List<Level> levels, string source)
    {
        Level? Find(int n) => levels.Where(l => l.Number == n && l.Bytes > 0).Select(l => (Level?)l).FirstOrDefault();
        if (Find(1) is not { } l1 || Find(2) is not { } l2) return null;
        var l3 = Find(3);
        int threadsPerCore = Math.Max(1, l1.SharedBy);
        long PerCore(Level l) => l.Bytes / Math.Max(1, l.SharedBy / threadsPerCore);   // an Atom module's L2 serves 2-4 cores
        return new CpuCaches(l1.Bytes, l1.Ways, PerCore(l2), l2.Ways, l3 is { } c ? PerCore(c) : 0, l3?.Ways ?? 0, source);
    }

    private static List<Level> ReadSysfs()
    {
        var levels = new List<Level>();
        const string root = "/sys/devices/system/cpu/cpu0/cache";
        if (!OperatingSystem.IsLinux() || !Directory.Exists(root)) return levels;
        foreach (var dir in Directory.GetDirectories(root, "index*"))
        {
            string Read(string name) => File.Exists(Path.Combine(dir, name)) ? File.ReadAllText(Path.Combine(dir, name)).Trim() : "";
            if (Read("type") is not ("Data" or "Unified")) continue;
            if (!int.TryParse(Read("level"), out int level)) continue;
            levels.Add(new Level(level, ParseSize(Read("size")), int.TryParse(Read("ways_of_associativity"), out int w) ? w : 0,
                CountCpus(Read("shared_cpu_list"))));
        }
        return levels;
    }

    /// <summary>"48K", "1024K", "32M" or a plain byte count.</summary>
    internal static long ParseSize(string s)
    {
        if (s.Length == 0) return 0;
        long unit = char.ToUpperInvariant(s[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        return long.Parse(unit == 1 ? s : s[..^1], System.Globalization.CultureInfo.InvariantCulture) * unit;
    }

    /// <summary>The CPUs in a list such as "0-3,8-11" (1 where it is empty).</summary>
    internal static int CountCpus(string list)
    {
        int count = 0;
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var ends = part.Split('-');
            count += ends.Length == 2 ? int.Parse(ends[1], System.Globalization.CultureInfo.InvariantCulture) - int.Parse(ends[0], System.Globalization.CultureInfo.InvariantCulture) + 1 : 1;
        }
        return Math.Max(1, count);
    }

    /// <summary>
    /// The cache descriptors of CPUID leaf 4 (Intel) or 0x8000001D (AMD, with topology extensions): both give, per
    /// subleaf, type and level (EAX[4:0], EAX[7:5]), the logical processors sharing it less one (EAX[25:14]), and
    /// line size, partitions and ways less one (EBX[11:0], [21:12], [31:22]), sets less one (ECX).
    /// </summary>
    private static List<Level> ReadCpuid()
    {
        var levels = new List<Level>();
        if (!X86Base.IsSupported) return levels;
        bool amd = IsAmd();
        uint maxExtended = (uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax;
        int leaf = amd ? unchecked((int)0x8000001D) : 4;
        if (amd ? maxExtended < 0x8000001D : X86Base.CpuId(0, 0).Eax < 4) leaf = 0;
        for (int sub = 0; leaf != 0 && sub < 16; sub++)
        {
            var (eax, ebx, ecx, _) = X86Base.CpuId(leaf, sub);
            int type = eax & 0x1F;
            if (type == 0) break;
            if (type == 2) continue;   // instruction cache
            int level = (eax >> 5) & 0x7, sharedBy = ((eax >> 14) & 0xFFF) + 1;
            long line = (ebx & 0xFFF) + 1, partitions = ((ebx >> 12) & 0x3FF) + 1, ways = ((uint)ebx >> 22) + 1, sets = (uint)ecx + 1L;
            levels.Add(new Level(level, ways * partitions * line * sets, (int)ways, sharedBy));
        }
        return levels;
    }

    private static bool IsAmd()
    {
        var (_, b, c, d) = X86Base.CpuId(0, 0);
        return b == 0x68747541 && d == 0x69746E65 && c == 0x444D4163;   // "AuthenticAMD"
    }

    private static List<Level> ReadAmdLegacy()
    {
        var levels = new List<Level>();
        if (!X86Base.IsSupported || !IsAmd()) return levels;
        if ((uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax >= 0x80000006)
        {
            // Hypervisors may zero leaf 0x8000001D (this project's Zen 5 VMs do); AMD's older per-core leaves still
            // give the L1d (0x80000005 ECX: KiB in [31:24], ways in [23:16]) and the L2 (0x80000006 ECX: KiB in
            // [31:16], encoded ways in [15:12]). Their L3 figure is the whole package's, with no count of the cores
            // that share it, so the L3 stays unknown.
            int l1 = X86Base.CpuId(unchecked((int)0x80000005), 0).Ecx, l2 = X86Base.CpuId(unchecked((int)0x80000006), 0).Ecx;
            levels.Add(new Level(1, (long)((uint)l1 >> 24) << 10, (l1 >> 16) & 0xFF, 1));
            levels.Add(new Level(2, (long)((uint)l2 >> 16) << 10, AmdWays((l2 >> 12) & 0xF), 1));
        }
        return levels;
    }

    /// <summary>The ways of AMD's 4-bit associativity code in leaf 0x80000006 (0: unknown, 15: fully associative, taken as 64).</summary>
    internal static int AmdWays(int code) => code switch
    {
        1 => 1, 2 => 2, 3 => 3, 4 => 4, 5 => 6, 6 => 8, 8 => 16, 0xA => 32, 0xB => 48, 0xC => 64, 0xD => 96, 0xE => 128, 0xF => 64,
        _ => 0,
    };
}
