using System.Diagnostics;
using System.Reflection;
using System.Runtime.Intrinsics.X86;
using System.Text.RegularExpressions;
using Backprop.Kernels;
using Backprop.Tests.Cli;
using Backprop.Tests.Distributed;
using Backprop.Tests.Training;

namespace Backprop.Tests.Packaging;

/// <summary>
/// The CLI published as Native AOT, as the README says to: the publish gives no trimming or AOT warning, writes
/// `backprop` (the AVX-512 build) and the AVX2 and x86-64 builds beside it, the native `backprop` answers as the JIT
/// build in this process does, bit for bit, with the GEMM kernels the JIT picks on this CPU, and hands over to the lower
/// builds when asked to (as it does on a CPU without AVX-512 or AVX2), and trains under mpirun as the JIT build does.
/// Publishing happens in a copy of the sources, so that it never rebuilds the binaries other tests run. Needs clang,
/// zlib1g-dev and Open MPI (.ci/run installs them).
/// </summary>
public class AotPublishTests
{
    private static readonly Regex TrimOrAotWarning = new(@"warning IL[23]\d{3}", RegexOptions.Compiled);

    private static (int ExitCode, string Stdout, string Stderr) Run(string file, string workingDirectory, TimeSpan limit, params string[] args) =>
        InstallTests.RunProcess(file, workingDirectory, limit, args);

    [Fact]
    [Trait("Category", "Aot")]
    public void ThePublishHasNoWarningsAndTheNativeCliAnswersAsTheJitOne()
    {
        using var tmp = new TempDir();
        string root = CliRunner.RepoRoot, src = tmp.File("src"), output = tmp.File("aot");
        InstallTests.CopySources(root, src);

        var publish = Run("dotnet", src, TimeSpan.FromMinutes(25),
            "publish", "src/Backprop.Cli/Backprop.Cli.csproj", "-c", "Release", "-r", "linux-x64", "-p:PublishAot=true", "-o", output);
        string log = publish.Stdout + publish.Stderr;
        Assert.True(publish.ExitCode == 0, log);
        var warnings = log.Split('\n').Where(l => TrimOrAotWarning.IsMatch(l)).ToArray();
        Assert.True(warnings.Length == 0, string.Join('\n', warnings));

        string backprop = Path.Combine(output, "backprop");
        foreach (var build in new[] { backprop, backprop + "-x86-64", backprop + "-x86-64-v3" })
            Assert.True(File.Exists(build), $"{build} was not published");

        var version = Run(backprop, tmp.Path, TimeSpan.FromMinutes(1), "--version");
        Assert.True(version.ExitCode == 0, version.Stderr);
        // the same version; the copy of the sources is no git checkout, so its build carries no commit hash after a '+'
        string jitVersion = typeof(Backprop.Cli.Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal(jitVersion.Split('+')[0], version.Stdout.Trim().Split('+')[0]);

        // the seed problem's loss, output and every gradient, to the last digit
        string seed = CliRunner.DataPath("problems", "seed-fc-relu-batch-mean.json");
        var grad = Run(backprop, tmp.Path, TimeSpan.FromMinutes(1), "grad", seed);
        Assert.True(grad.ExitCode == 0, grad.Stderr);
        Assert.Equal(CliRunner.Run("grad", seed).Stdout, grad.Stdout);

        // `backprop` runs (itself or by handing over) the build with the GEMM kernels the JIT takes on this CPU
        string[] gemm = ["bench", "gemm", "--m", "64", "--n", "64", "--k", "64", "--threads", "1"];
        var bench = Run(backprop, tmp.Path, TimeSpan.FromMinutes(1), gemm);
        Assert.True(bench.ExitCode == 0, bench.Stderr);
        Assert.Contains($", {ComputeContext.BestGemmPath} kernels:", bench.Stdout);
        // the hand-over to the lower builds, asked for through BACKPROP_ISA as a CPU without AVX-512 (or AVX2) forces it;
        // it can only lower the level, never raise it above the CPU's
        var expected = new[]
        {
            ("x86-64-v3", Avx2.IsSupported && Fma.IsSupported ? GemmPath.Avx2 : GemmPath.Portable),
            ("x86-64", GemmPath.Portable),
        };
        foreach (var (isa, path) in expected)
        {
            var lowered = InstallTests.RunProcess(backprop, tmp.Path, TimeSpan.FromMinutes(1), new Dictionary<string, string> { ["BACKPROP_ISA"] = isa }, gemm);
            Assert.True(lowered.ExitCode == 0, lowered.Stderr);
            Assert.Contains($", {path} kernels:", lowered.Stdout);
            var loweredGrad = InstallTests.RunProcess(backprop, tmp.Path, TimeSpan.FromMinutes(1), new Dictionary<string, string> { ["BACKPROP_ISA"] = isa }, "grad", seed);
            Assert.True(loweredGrad.ExitCode == 0, loweredGrad.Stderr);
        }
        // the AVX2 build hands over too, on its own
        var fromV3 = InstallTests.RunProcess(backprop + "-x86-64-v3", tmp.Path, TimeSpan.FromMinutes(1), new Dictionary<string, string> { ["BACKPROP_ISA"] = "x86-64" }, gemm);
        Assert.True(fromV3.ExitCode == 0, fromV3.Stderr);
        Assert.Contains($", {GemmPath.Portable} kernels:", fromV3.Stdout);
        // a level it does not know is refused in one line (it used to run the top build silently), and v4 is the top build
        var unknown = InstallTests.RunProcess(backprop, tmp.Path, TimeSpan.FromMinutes(1), new Dictionary<string, string> { ["BACKPROP_ISA"] = "x86-64-v5" }, "--version");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Equal("backprop: BACKPROP_ISA=x86-64-v5: expected x86-64, x86-64-v3 or x86-64-v4 (or unset for this CPU's best)", unknown.Stderr.TrimEnd());
        Assert.Empty(unknown.Stdout);
        // still one line when the value holds a line break
        var twoLines = InstallTests.RunProcess(backprop, tmp.Path, TimeSpan.FromMinutes(1), new Dictionary<string, string> { ["BACKPROP_ISA"] = "v4\nx" }, "--version");
        Assert.Equal(2, twoLines.ExitCode);
        Assert.Equal("backprop: BACKPROP_ISA=v4?x: expected x86-64, x86-64-v3 or x86-64-v4 (or unset for this CPU's best)", twoLines.Stderr.TrimEnd());
        var v4 = InstallTests.RunProcess(backprop, tmp.Path, TimeSpan.FromMinutes(1), new Dictionary<string, string> { ["BACKPROP_ISA"] = "x86-64-v4" }, gemm);
        Assert.True(v4.ExitCode == 0, v4.Stderr);
        Assert.Contains($", {ComputeContext.BestGemmPath} kernels:", v4.Stdout);
        // without the lower builds beside it, a CPU that needs one gets one line and exit 2, not a crash
        string alone = tmp.File("alone");
        Directory.CreateDirectory(alone);
        File.Copy(backprop, Path.Combine(alone, "backprop"));   // File.Copy keeps the execute bits on Unix
        var missing = InstallTests.RunProcess(Path.Combine(alone, "backprop"), tmp.Path, TimeSpan.FromMinutes(1),
            new Dictionary<string, string> { ["BACKPROP_ISA"] = "x86-64" }, "--version");
        Assert.Equal(2, missing.ExitCode);
        Assert.StartsWith("backprop: this CPU lacks", missing.Stderr);
        Assert.Single(missing.Stderr.TrimEnd().Split('\n'));

        // a short training run: the same test loss and accuracy as the JIT build's, bit for bit
        string[] train = ["train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "3", "--quiet", "--json", "--seed", "3"];
        var native = Run(backprop, tmp.Path, TimeSpan.FromMinutes(2), [.. train, "--out", tmp.File("native.safetensors")]);
        Assert.True(native.ExitCode == 0, native.Stderr);
        var jit = CliRunner.Run([.. train, "--out", tmp.File("jit.safetensors")]);
        Assert.True(jit.ExitCode == 0, jit.Stderr);
        var nativeJson = System.Text.Json.JsonDocument.Parse(native.Stdout.TrimEnd().Split('\n')[^1]).RootElement;
        foreach (var key in new[] { "test_loss", "test_accuracy" })
            Assert.Equal(jit.Json.GetProperty(key).GetDouble(), nativeJson.GetProperty(key).GetDouble());
        Assert.Equal(File.ReadAllBytes(tmp.File("jit.safetensors")), File.ReadAllBytes(tmp.File("native.safetensors")));

        // under mpirun (docs/distributed.md runs the native build there: no runtime on the nodes, no JIT in every rank):
        // 2 ranks of the native build train the model that 2 ranks of the JIT build train, bit for bit
        string[] distributed = [.. MpiTrainingTests.Hyper, "--dtype", "float64", "--epochs", "1", "--quiet", "--json"];
        var nativeRanks = MpiTrainingTests.Run(2, [backprop], [.. distributed, "--out", tmp.File("native-ranks.safetensors")]);
        Assert.True(nativeRanks.ExitCode == 0, nativeRanks.Stdout + nativeRanks.Stderr);
        Assert.Contains("\"test_accuracy\"", nativeRanks.Stdout);
        var jitRanks = MpiTrainingTests.Run(2, null, [.. distributed, "--out", tmp.File("jit-ranks.safetensors")]);
        Assert.True(jitRanks.ExitCode == 0, jitRanks.Stdout + jitRanks.Stderr);
        Assert.Equal(MpiTrainingTests.Parameters(tmp.File("jit-ranks.safetensors")), MpiTrainingTests.Parameters(tmp.File("native-ranks.safetensors")));
    }
}
