using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Backprop.Cli;

/// <summary>
/// Native AOT compiles for one instruction set, fixed at publish time: unlike the JIT, a binary built for the portable
/// baseline (x86-64-v2) never takes the AVX2 or AVX-512 kernels, because the compiler folds <c>Avx2.IsSupported</c> and
/// <c>Avx512F.IsSupported</c> to false (it only defers SSE4-era sets to run-time checks, never VEX or EVEX ones). So
/// an AOT publish of linux-x64 writes three builds side by side (see Backprop.Cli.csproj): <c>backprop</c> for the
/// baseline, and <c>backprop-x86-64-v3</c> (AVX2, FMA) and <c>backprop-x86-64-v4</c> (AVX-512). The baseline one
/// runs on any x64 machine and, first thing, hands the process over (execv, same arguments and environment) to the
/// best build this CPU can run. Measured on a Zen 5 (README, "Native AOT"): the baseline build alone reaches 14% of
/// the JIT build's GEMM GFLOPS and 17% of its bench train samples/s, the v3 build 40% and 50%, the v4 build 100%.
/// </summary>
internal static partial class NativeBuilds
{
    /// <summary>The builds beside the baseline one, fastest first: their file name suffix and whether this CPU runs them.</summary>
    private static readonly (string Level, Func<bool> Runs)[] Levels =
    [
        ("x86-64-v4", () => CpuRunsV3() && CpuRunsV4()),
        ("x86-64-v3", CpuRunsV3),
    ];

    /// <summary>
    /// In the baseline AOT build, replaces this process with the fastest build beside it that this CPU runs; returns
    /// when there is none to hand over to (a JIT run, a build already above the baseline, a CPU without AVX2, or a
    /// publish with one instruction set) and this process carries on.
    /// </summary>
    public static void HandOverToFastestBuild()
    {
        // The JIT picks the kernels by the CPU it runs on; an AOT build compiled for AVX2 or more already has them.
        if (RuntimeFeature.IsDynamicCodeSupported || Avx2.IsSupported || !OperatingSystem.IsLinux() || !X86Base.IsSupported) return;
        if (Environment.ProcessPath is not { } self) return;
        foreach (var (level, runs) in Levels)
        {
            string build = self + "-" + level;
            if (!runs() || !File.Exists(build)) continue;
            Exec(build, [Environment.GetCommandLineArgs()[0], .. Environment.GetCommandLineArgs()[1..]]);
            return;   // execv failed (the file is not executable): this build runs the command itself
        }
    }

    // CPUID leaf 1 ECX, leaf 7 EBX and leaf 0x80000001 ECX bits (Intel SDM vol. 2A, CPUID). OSXSAVE says the kernel
    // manages the extended register state; Linux saves every AVX/AVX-512 state its CPU has. Should a CPU or kernel still
    // lack one, the build's own start-up check (the .NET runtime's) stops it with its message instead of faulting.
    private static bool CpuRunsV3()
    {
        var (_, _, ecx1, _) = X86Base.CpuId(1, 0);
        var (_, ebx7, _, _) = X86Base.CpuId(7, 0);
        var (_, _, ecxExt, _) = X86Base.CpuId(unchecked((int)0x80000001), 0);
        return Bit(ecx1, 27) && Bit(ecx1, 28) && Bit(ecx1, 12) && Bit(ecx1, 22) && Bit(ecx1, 29)   // OSXSAVE AVX FMA MOVBE F16C
            && Bit(ebx7, 5) && Bit(ebx7, 3) && Bit(ebx7, 8)                                         // AVX2 BMI1 BMI2
            && Bit(ecxExt, 5);                                                                      // LZCNT
    }

    private static bool CpuRunsV4()
    {
        var (_, ebx7, _, _) = X86Base.CpuId(7, 0);
        return Bit(ebx7, 16) && Bit(ebx7, 17) && Bit(ebx7, 28) && Bit(ebx7, 30) && Bit(ebx7, 31);   // AVX512 F DQ CD BW VL
    }

    private static bool Bit(int register, int bit) => (register & (1 << bit)) != 0;

    private static unsafe void Exec(string path, string[] argv)
    {
        var strings = new nint[argv.Length + 1];
        try
        {
            for (int i = 0; i < argv.Length; i++) strings[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
            nint file = Marshal.StringToCoTaskMemUTF8(path);
            fixed (nint* p = strings) execv((byte*)file, p);
            Marshal.FreeCoTaskMem(file);
        }
        finally
        {
            foreach (var s in strings) Marshal.FreeCoTaskMem(s);
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int execv(byte* path, nint* argv);
}
