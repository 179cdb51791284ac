using System.Diagnostics;
using Backprop.Tests.Cli;
using Backprop.Tests.Training;

namespace Backprop.Tests.Packaging;

/// <summary>
/// The packages as a user meets them: `dotnet pack` makes the library and the tool into a folder feed, `dotnet tool
/// install` installs the tool from it and it trains, and the sample builds and runs against the library package (not
/// the project). Packing happens in a copy of the sources, so that it never rebuilds the binaries other tests run.
/// </summary>
public class InstallTests
{
    private static (int ExitCode, string Output) Dotnet(string workingDirectory, params string[] args) => Run("dotnet", workingDirectory, args);

    private static (int ExitCode, string Output) Run(string file, string workingDirectory, params string[] args)
    {
        var r = RunProcess(file, workingDirectory, TimeSpan.FromMinutes(8), args);
        return (r.ExitCode, r.Stdout + r.Stderr);
    }

    /// <summary>Runs <paramref name="file"/> without the SDK's telemetry and logo; a run past <paramref name="limit"/> is killed and fails the test.</summary>
    internal static (int ExitCode, string Stdout, string Stderr) RunProcess(string file, string workingDirectory, TimeSpan limit, params string[] args) =>
        RunProcess(file, workingDirectory, limit, new Dictionary<string, string>(), args);

    internal static (int ExitCode, string Stdout, string Stderr) RunProcess(string file, string workingDirectory, TimeSpan limit,
        IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', args)} did not finish in {limit.TotalMinutes} minutes");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>What building the library and the CLI from a copy needs: src/ and the root files its build reads.</summary>
    internal static void CopySources(string root, string destination)
    {
        CopyTree(Path.Combine(root, "src"), Path.Combine(destination, "src"));
        foreach (var f in new[] { "Directory.Build.props", "Directory.Packages.props", "README.md", ".editorconfig" })
            File.Copy(Path.Combine(root, f), Path.Combine(destination, f));
    }

    internal static void CopyTree(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(from, dir);
            if (rel.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj")) continue;
            Directory.CreateDirectory(Path.Combine(to, rel));
        }
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(from, file);
            if (rel.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj")) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, rel))!);
            File.Copy(file, Path.Combine(to, rel));
        }
    }

    [Fact]
    [Trait("Category", "Install")]
    public void TheToolInstallsAndTrainsAndTheSampleRunsAgainstThePackage()
    {
        using var tmp = new TempDir();
        string root = CliRunner.RepoRoot, src = tmp.File("src"), feed = tmp.File("feed");
        // a version no cache has seen: restores must take these packages from the feed
        string version = $"0.4.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        CopySources(root, src);

        foreach (var project in new[] { "src/Backprop/Backprop.csproj", "src/Backprop.Cli/Backprop.Cli.csproj" })
        {
            var pack = Dotnet(src, "pack", project, "-c", "Release", "-o", feed, $"-p:Version={version}");
            Assert.True(pack.ExitCode == 0, pack.Output);
        }
        Assert.True(File.Exists(Path.Combine(feed, $"Backprop.{version}.nupkg")), "the library package");
        Assert.True(File.Exists(Path.Combine(feed, $"Backprop.{version}.snupkg")), "the library's symbols");
        Assert.True(File.Exists(Path.Combine(feed, $"Backprop.Tool.{version}.nupkg")), "the tool package");

        // the tool, as `dotnet tool install` puts it on a user's machine
        string tools = tmp.File("tools");
        var install = Dotnet(tmp.Path, "tool", "install", "--tool-path", tools, "--add-source", feed, "--version", version, "Backprop.Tool");
        Assert.True(install.ExitCode == 0, install.Output);
        string backprop = Path.Combine(tools, "backprop");
        var v = Run(backprop, tmp.Path, "--version");
        Assert.True(v.ExitCode == 0, v.Output);
        Assert.StartsWith(version, v.Output.Trim());
        var train = Run(backprop, tmp.Path, "train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "3", "--quiet", "--json",
            "--out", tmp.File("iris.safetensors"));
        Assert.True(train.ExitCode == 0, train.Output);
        Assert.Contains("\"test_accuracy\"", train.Output);
        Assert.True(File.Exists(tmp.File("iris.safetensors")));

        // the sample, built against the library package from the feed
        string samples = tmp.File("samples");
        CopyTree(Path.Combine(root, "samples"), samples);
        File.WriteAllText(Path.Combine(samples, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="local" value="{feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        var run = Dotnet(Path.Combine(samples, "IrisFromCSharp"), "run", "-c", "Release", $"-p:BackpropVersion={version}");
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Contains("test accuracy", run.Output);
        var assets = File.ReadAllText(Path.Combine(samples, "IrisFromCSharp", "obj", "project.assets.json"));
        Assert.Contains($"\"Backprop/{version}\"", assets);   // the package, not a project reference
    }
}
