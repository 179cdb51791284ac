using Backprop.Kernels;

namespace Backprop.Tests.Kernels;

/// <summary>
/// The cache blocks derived from a CPU's caches (the BLIS analytical model) fit the caches they are meant for, on the
/// caches of real CPUs, and the products they drive compute the same as the fixed blocking.
/// </summary>
public class KernelTuningTests
{
    private const int KiB = 1024, MiB = 1024 * 1024;

    /// <summary>Real CPUs' per-core caches: L1d, its ways, L2, its ways, L3 per core, its ways; and their best kernels.</summary>
    public static IEnumerable<object[]> Cpus() =>
    [
        // Zen 4 (Genoa / Raphael): 32 KiB 8-way L1d, 1 MiB 8-way L2, 32 MiB 16-way L3 over 8 cores
        ["Zen 4", 32 * KiB, 8, 1 * MiB, 8, 4 * MiB, 16, nameof(GemmPath.Avx512)],
        // Zen 5 (Turin): 48 KiB 12-way L1d, 1 MiB 16-way L2, 32 MiB 16-way L3 over 8 cores
        ["Zen 5", 48 * KiB, 12, 1 * MiB, 16, 4 * MiB, 16, nameof(GemmPath.Avx512)],
        // Skylake-X (Xeon Gold 6140): 32 KiB 8-way L1d, 1 MiB 16-way L2, 1.375 MiB 11-way L3 slice per core
        ["Skylake-X", 32 * KiB, 8, 1 * MiB, 16, 1408 * KiB, 11, nameof(GemmPath.Avx512)],
        // Haswell (Xeon E5 v3), the AVX2 tile: 32 KiB 8-way L1d, 256 KiB 8-way L2, 2.5 MiB 20-way L3 per core
        ["Haswell", 32 * KiB, 8, 256 * KiB, 8, 2560 * KiB, 20, nameof(GemmPath.Avx2)],
        // Atom C2750 (Silvermont), no AVX: 24 KiB 6-way L1d, 1 MiB 16-way L2 per two cores, no L3
        ["Silvermont", 24 * KiB, 6, 1 * MiB, 16, 0, 0, nameof(GemmPath.Portable)],
    ];

    private static (int MR, int NR) Tile(GemmPath path) => path switch
    {
        GemmPath.Avx512 => (Avx512Kernel<float>.MR, Avx512Kernel<float>.NR),
        GemmPath.Avx2 => (Avx2Kernel<float>.MR, Avx2Kernel<float>.NR),
        _ => (PortableKernel<float>.MR, PortableKernel<float>.NR),
    };

    private static (int MR, int NR) Tile64(GemmPath path) => path switch
    {
        GemmPath.Avx512 => (Avx512Kernel<double>.MR, Avx512Kernel<double>.NR),
        GemmPath.Avx2 => (Avx2Kernel<double>.MR, Avx2Kernel<double>.NR),
        _ => (PortableKernel<double>.MR, PortableKernel<double>.NR),
    };

    [Theory]
    [MemberData(nameof(Cpus))]
    public void DerivedBlocksFitTheCachesTheyAreFor(string cpu, int l1d, int l1Ways, int l2, int l2Ways, int l3, int l3Ways, string pathName)
    {
        var path = Enum.Parse<GemmPath>(pathName);
        var caches = new CpuCaches(l1d, l1Ways, l2, l2Ways, l3, l3Ways, cpu);
        var t = KernelTuning.FromCaches(caches, path);
        var (mr, nr) = Tile(path);
        Assert.Equal(0, t.KcBytes % (nr * sizeof(float)));
        int kc = t.KcBytes / (nr * sizeof(float));
        Assert.True(kc >= 32 && kc % 8 == 0, $"{cpu}: kc = {kc}");
        // L1: the B micro-panel and an A micro-panel, with one way left for C
        Assert.True((long)(mr + nr) * kc * sizeof(float) <= (long)l1d * (l1Ways - 1) / l1Ways, $"{cpu}: kc = {kc} overflows the L1d");
        // ... and together they fill at least a third of it (the model wastes no more than the ways it rounds off)
        Assert.True((long)(mr + nr) * kc * sizeof(float) >= l1d / 3, $"{cpu}: kc = {kc} leaves most of the L1d idle");
        // L2: the A block next to the B micro-panel
        Assert.True(t.McBytes + t.KcBytes <= l2, $"{cpu}: {t.McBytes} + {t.KcBytes} bytes overflow the L2");
        Assert.True(t.McBytes >= l2 / 4, $"{cpu}: an A block of {t.McBytes} bytes leaves most of the L2 idle");
        // L3: the B block next to the A block; without an L3 the fixed nc
        if (l3 > 0)
        {
            Assert.Equal(0, t.Nc % nr);
            Assert.True((long)t.Nc * kc * sizeof(float) + t.McBytes <= l3, $"{cpu}: nc = {t.Nc} overflows the L3 share");
        }
        else Assert.Equal(KernelTuning.Fixed.Nc, t.Nc);
        // float64's own kc obeys the same L1 bound with its own tile
        var (mr64, nr64) = Tile64(path);
        Assert.NotNull(t.Float64KcBytes);
        int kc64 = t.KcBytesFor<double>() / (nr64 * sizeof(double));
        Assert.True(kc64 >= 32 && kc64 % 8 == 0 && kc64 * nr64 * sizeof(double) == t.Float64KcBytes, $"{cpu}: float64 kc = {kc64}");
        Assert.True((long)(mr64 + nr64) * kc64 * sizeof(double) <= (long)l1d * (l1Ways - 1) / l1Ways, $"{cpu}: float64 kc = {kc64} overflows the L1d");
        if (l3 > 0) Assert.True((long)t.Nc * kc64 * sizeof(double) + t.McBytes <= l3, $"{cpu}: nc = {t.Nc} overflows the L3 share in float64");
        Assert.Equal(t.KcBytes, t.KcBytesFor<float>());
        // C is prefetched once a sweep of it outgrows the L2
        Assert.Equal(l2, t.PrefetchCBytes);
        // everything else is the fixed tuning's
        Assert.Equal(KernelTuning.Fixed with { KcBytes = t.KcBytes, Float64KcBytes = t.Float64KcBytes, McBytes = t.McBytes, Nc = t.Nc, PrefetchCBytes = l2 }, t);
        // and the blocks the product takes from it are whole tiles
        var (kcBlock, mcBlock, ncBlock) = CacheBlockedGemm<float, PortableKernel<float>>.Blocks(t, 4096);
        Assert.True(kcBlock > 0 && mcBlock % PortableKernel<float>.MR == 0 && ncBlock % PortableKernel<float>.NR == 0);
    }

    [Fact]
    public void UnreportedAssociativityIsTakenAsTheCommonOne()
    {
        var unknown = KernelTuning.FromCaches(new CpuCaches(32 * KiB, 0, MiB, 0, 2 * MiB, 0, "no ways"), GemmPath.Avx2);
        var known = KernelTuning.FromCaches(new CpuCaches(32 * KiB, 8, MiB, 16, 2 * MiB, 16, "8/16/16 ways"), GemmPath.Avx2);
        Assert.Equal(known, unknown);
    }

    [Fact]
    public void ABiggerL1dGivesADeeperKc()
    {
        var zen4 = KernelTuning.FromCaches(new CpuCaches(32 * KiB, 8, MiB, 8, 4 * MiB, 16, "zen4"), GemmPath.Avx512);
        var zen5 = KernelTuning.FromCaches(new CpuCaches(48 * KiB, 12, MiB, 16, 4 * MiB, 16, "zen5"), GemmPath.Avx512);
        Assert.True(zen5.KcBytes > zen4.KcBytes, $"{zen5.KcBytes} against {zen4.KcBytes}");
    }

    [Fact]
    public void DefaultIsDerivedFromThisCpusCachesWhenItReportsThem()
    {
        if (CpuCaches.ThisCpu is not { } caches) Assert.Same(KernelTuning.Fixed, KernelTuning.Default);
        else
        {
            Assert.True(caches.L1dBytes >= 4 * KiB && caches.L2Bytes >= caches.L1dBytes, caches.ToString());
            Assert.Equal(KernelTuning.FromCaches(caches, ComputeContext.BestGemmPath), KernelTuning.Default);
        }
    }

    [Theory]
    [InlineData("48K", 48 * 1024)]
    [InlineData("1024K", 1024 * 1024)]
    [InlineData("32M", 32L * 1024 * 1024)]
    [InlineData("65536", 65536)]
    [InlineData("", 0)]
    public void SysfsSizesParse(string text, long bytes) => Assert.Equal(bytes, CpuCaches.ParseSize(text));

    [Theory]
    [InlineData("0", 1)]
    [InlineData("0-7", 8)]
    [InlineData("0-3,8-11", 8)]
    [InlineData("0,64", 2)]
    public void SysfsCpuListsCount(string list, int count) => Assert.Equal(count, CpuCaches.CountCpus(list));

    [Theory]
    [InlineData(6, 8)]
    [InlineData(8, 16)]
    [InlineData(0xA, 32)]
    [InlineData(0, 0)]
    public void AmdAssociativityCodesDecode(int code, int ways) => Assert.Equal(ways, CpuCaches.AmdWays(code));

    /// <summary>The blocks of every CPU above drive a product to the fixed blocking's result (to rounding: kc splits the sums).</summary>
    [Theory]
    [MemberData(nameof(Cpus))]
    public void ProductsWithDerivedBlocksMatchTheFixedBlocking(string cpu, int l1d, int l1Ways, int l2, int l2Ways, int l3, int l3Ways, string pathName)
    {
        var path = Enum.Parse<GemmPath>(pathName);
        if (!ComputeContext.IsSupported(path)) path = GemmPath.Portable;
        var tuning = KernelTuning.FromCaches(new CpuCaches(l1d, l1Ways, l2, l2Ways, l3, l3Ways, cpu), path);
        const int m = 130, n = 300, k = 1100;
        var rng = new Random(5);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, k * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var expected = new float[m * n];
        var actual = new float[m * n];
        using var fixedContext = new ComputeContext(1, KernelTuning.Fixed, path);
        using var derived = new ComputeContext(1, tuning, path);
        Gemm.Multiply<float>(fixedContext, false, true, m, n, k, a, b, expected, false);
        Gemm.Multiply<float>(derived, false, true, m, n, k, a, b, actual, false);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-3f);
        double[] a64 = a.Select(x => (double)x).ToArray(), b64 = b.Select(x => (double)x).ToArray();
        double[] expected64 = new double[m * n], actual64 = new double[m * n];
        Gemm.Multiply<double>(fixedContext, false, false, m, n, k, a64, b64, expected64, false);
        Gemm.Multiply<double>(derived, false, false, m, n, k, a64, b64, actual64, false);
        for (int i = 0; i < expected64.Length; i++) Assert.Equal(expected64[i], actual64[i], 1e-10);
    }
}
