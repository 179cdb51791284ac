using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Backprop.Launcher;

/// <summary>
/// The `backprop` of a Native AOT publish (linux-x64). AOT fixes the instruction set at publish time: the default
/// build (x86-64, runs on any x64 CPU) never takes the AVX2 or AVX-512 kernels, because the compiler folds
/// <c>Avx2.IsSupported</c> and <c>Avx512F.IsSupported</c> to false (it defers only SSE-era sets to run-time checks,
/// never VEX or EVEX ones). So the publish compiles the CLI three times (backprop-x86-64, backprop-x86-64-v3 with AVX2
/// and FMA, backprop-x86-64-v4 with AVX-512; see Backprop.Cli.csproj), and this small program replaces itself (execv:
/// same arguments, same environment, same process) with the fastest one the CPU runs. Measured on a Zen 5 (README,
/// "Native AOT"): the x86-64 build alone reaches 14% of the JIT build's GEMM GFLOPS, the v3 build 40%, the v4 build
/// 100%. The launcher is a separate program, not the x86-64 CLI itself, because start-up is mostly page faults on the
/// binary (about 1000 for the CLI, 140 for this): handing over from the CLI cost a second CLI start.
/// </summary>
internal static partial class Program
{
    private static int Main()
    {
        string? self = Environment.ProcessPath;
        if (self is null) return Fail("cannot tell where this program is");
        string[] argv = Environment.GetCommandLineArgs();
        string last = "";
        foreach (var (suffix, runs) in Builds)
        {
            string build = self + suffix;
            if (!runs() || !File.Exists(build)) continue;
            Exec(build, argv);
            last = build;   // execv returned: that build cannot be run (permissions); try the next
        }
        return Fail(last == "" ? $"no build of backprop beside {self} (expected {self}-x86-64)" : $"cannot run {last}: {Marshal.GetLastSystemError()}");
    }

    /// <summary>The builds beside the launcher, fastest first, and whether this CPU runs each.</summary>
    private static readonly (string Suffix, Func<bool> Runs)[] Builds =
    [
        ("-x86-64-v4", () => RunsV3() && RunsV4()),
        ("-x86-64-v3", RunsV3),
        ("-x86-64", () => true),
    ];

    // CPUID leaf 1 ECX, leaf 7 EBX and leaf 0x80000001 ECX bits (Intel SDM vol. 2A, CPUID). OSXSAVE says the kernel
    // manages the extended register state, and Linux saves every AVX and AVX-512 state its CPU has. Should a CPU or a
    // kernel still lack one, the build's own start-up check (.NET's) stops it with a message instead of a fault.
    private static bool RunsV3()
    {
        if (!X86Base.IsSupported) return false;
        var (_, _, ecx1, _) = X86Base.CpuId(1, 0);
        var (_, ebx7, _, _) = X86Base.CpuId(7, 0);
        var (_, _, ecxExt, _) = X86Base.CpuId(unchecked((int)0x80000001), 0);
        return Bit(ecx1, 27) && Bit(ecx1, 28) && Bit(ecx1, 12) && Bit(ecx1, 22) && Bit(ecx1, 29)   // OSXSAVE AVX FMA MOVBE F16C
            && Bit(ebx7, 5) && Bit(ebx7, 3) && Bit(ebx7, 8)                                         // AVX2 BMI1 BMI2
            && Bit(ecxExt, 5);                                                                      // LZCNT
    }

    private static bool RunsV4()
    {
        var (_, ebx7, _, _) = X86Base.CpuId(7, 0);
        return Bit(ebx7, 16) && Bit(ebx7, 17) && Bit(ebx7, 28) && Bit(ebx7, 30) && Bit(ebx7, 31);   // AVX512 F DQ CD BW VL
    }

    private static bool Bit(int register, int bit) => (register & (1 << bit)) != 0;

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"backprop: {message}");
        return 2;
    }

    private static unsafe void Exec(string path, string[] argv)
    {
        var strings = new nint[argv.Length + 1];   // NULL-terminated
        nint file = Marshal.StringToCoTaskMemUTF8(path);
        try
        {
            for (int i = 0; i < argv.Length; i++) strings[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
            fixed (nint* p = strings) execv((byte*)file, p);
        }
        finally
        {
            Marshal.FreeCoTaskMem(file);
            foreach (var s in strings) Marshal.FreeCoTaskMem(s);
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int execv(byte* path, nint* argv);
}
