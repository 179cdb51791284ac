using System.Diagnostics;
using Backprop.Data;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>
/// The real CLI in a child process, killed with SIGKILL (Process.Kill) while it trains and checkpoints every epoch:
/// the checkpoint left behind must load and resume.
/// </summary>
public class KillResumeTests
{
    private static string Digits => CliRunner.DataPath("tabular", "digits.csv.gz");

    private static ProcessStartInfo Cli(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "backprop.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: the test project copies the CLI next to the tests");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        // A process started in the background by a non-interactive shell (`.ci/run &`, say) ignores SIGINT, and its
        // children inherit that: the runtime then never sees a Ctrl+C, and training goes on (a CI run started so timed
        // out here with the main thread running). coreutils' env gives the child the default disposition back.
        bool resetSignals = OperatingSystem.IsLinux() && File.Exists("/usr/bin/env");
        var psi = new ProcessStartInfo(resetSignals ? "/usr/bin/env" : dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (resetSignals) foreach (var a in (string[])["--default-signal=INT", dotnet]) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    // A constant rate: the run is open-ended (--epochs 100000) and is finished by a resume with fewer epochs, which a
    // cosine schedule (whose rate spans --epochs) would refuse.
    private static readonly string[] Hyper = ["--data", Digits, "--batch", "64", "--lr", "0.003", "--schedule", "constant", "--threads", "1", "--quiet", "--json"];

    /// <summary>The epoch of the checkpoint at <paramref name="path"/>, or 0 while there is none.</summary>
    private static int EpochOf(string path)
    {
        if (!File.Exists(path)) return 0;
        try { return Checkpoint.Load<float>(path).Epoch; }
        catch (IOException) when (!File.Exists(path)) { return 0; }
    }

    /// <summary>Each thread of process <paramref name="pid"/>: its name, state and where the kernel has it waiting (Linux), to tell a deadlock from a busy loop.</summary>
    private static string Threads(int pid)
    {
        try
        {
            return string.Join("; ", Directory.GetDirectories($"/proc/{pid}/task").Select(t =>
            {
                string Read(string f) { try { return File.ReadAllText(Path.Combine(t, f)).Trim(); } catch (IOException) { return "?"; } }
                string stat = Read("stat");
                int close = stat.LastIndexOf(')');
                string state = close > 0 && close + 2 < stat.Length ? stat[(close + 2)..(close + 3)] : "?";
                return $"{Read("comm")} {state} {Read("wchan")}";
            })) + "; " + string.Join(" ", File.ReadLines($"/proc/{pid}/status").Where(l => l.StartsWith("Sig", StringComparison.Ordinal) || l.StartsWith("ShdPnd", StringComparison.Ordinal)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return "(not readable)"; }
    }

    /// <summary>
    /// Starts the CLI, waits until it has written a checkpoint past <paramref name="afterEpoch"/>, has
    /// <paramref name="stop"/> end it, and returns its exit code and what it wrote on stderr.
    /// </summary>
    private static (int ExitCode, string Stderr) RunAndStop(string ck, int afterEpoch, Action<Process> stop, params string[] args)
    {
        var stderr = new System.Text.StringBuilder();
        using var p = new Process { StartInfo = Cli(args) };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        p.OutputDataReceived += (_, _) => { };
        try
        {
            Assert.True(p.Start());
            p.BeginErrorReadLine();
            p.BeginOutputReadLine();
            var clock = Stopwatch.StartNew();
            // every checkpoint seen while the writer runs must be complete: the writes are atomic
            while (EpochOf(ck) <= afterEpoch)
            {
                Assert.False(p.HasExited, $"the training process exited early: {stderr}");
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"no checkpoint past epoch {afterEpoch} after 90 s");
                Thread.Sleep(20);
            }
            stop(p);
            if (!p.WaitForExit(60_000)) lock (stderr) Assert.Fail($"the stopped process did not exit within 60 s; its stderr: {stderr}; its threads: {Threads(p.Id)}");
            p.WaitForExit();   // drains the redirected streams
        }
        finally
        {
            if (!p.HasExited)
            {
                try { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); }
                catch (InvalidOperationException) { }
            }
        }
        lock (stderr) return (p.ExitCode, stderr.ToString());
    }

    /// <summary>Runs the CLI until it has written a checkpoint past <paramref name="afterEpoch"/>, lets it run a little longer (so that the kill may land inside a write) and kills it.</summary>
    private static void RunAndKill(string ck, int afterEpoch, params string[] args) =>
        RunAndStop(ck, afterEpoch, p =>
        {
            Thread.Sleep(150 + Random.Shared.Next(300));
            Assert.False(p.HasExited, "the training process exited early");
            p.Kill(entireProcessTree: true); // SIGKILL on Linux
        }, args);

    [Fact]
    public void Ctrl_C_stops_the_run_keeps_its_checkpoint_and_says_how_to_resume()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("ck.safetensors");
        string model = tmp.File("model.safetensors");
        var (exitCode, err) = RunAndStop(ck, 0, p =>
        {
            using var kill = Process.Start("kill", ["-INT", p.Id.ToString()]);   // what Ctrl+C sends
            kill.WaitForExit();
        }, ["train", .. Hyper, "--epochs", "100000", "--checkpoint", ck, "--out", model]);
        Assert.Equal(130, exitCode);
        Assert.Equal($"backprop: interrupted; continue with: backprop train --resume {ck}", err.TrimEnd());
        Assert.False(File.Exists(model), "an interrupted run saves no model");
        var c = Checkpoint.Load<float>(ck);   // complete and loadable
        Assert.Equal(Enumerable.Range(1, c.Epoch), c.History.Select(h => h.Epoch));
    }

    [Fact]
    public void A_checkpoint_survives_kill_9_and_resumes()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("ck.safetensors");
        string never = tmp.File("never.safetensors");

        // 1: a fresh run, killed; 2: a run resumed from that checkpoint, killed too
        RunAndKill(ck, 0, ["train", .. Hyper, "--epochs", "100000", "--checkpoint", ck, "--out", never]);
        int first = Checkpoint.Load<float>(ck).Epoch;
        Assert.True(first >= 1);
        RunAndKill(ck, first, ["train", .. Hyper, "--epochs", "100000", "--resume", ck, "--checkpoint", ck, "--out", never]);
        Assert.False(File.Exists(never));

        // the checkpoint is a complete one, loadable as a checkpoint and as a model
        var c = Checkpoint.Load<float>(ck);
        Assert.True(c.Epoch > first, $"epoch {c.Epoch} after resuming from {first}");
        Assert.Equal(c.Epoch, c.History.Count);
        Assert.Equal(Enumerable.Range(1, c.Epoch), c.History.Select(h => h.Epoch));
        var model = ModelFile.Load<float>(ck);
        Assert.Equal(64, model.Network.Inputs);
        Assert.Equal(10, model.Network.Outputs);

        var eval = CliRunner.Run("evaluate", "--model", ck, "--data", Digits, "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        Assert.Equal(1797, eval.Json.GetProperty("samples").GetInt32());
        Assert.True(eval.Json.GetProperty("accuracy").GetDouble() > 0.5, "a checkpoint after ≥ 2 epochs of training classifies digits");

        // resume for one more epoch and finish normally
        string resumed = tmp.File("resumed.safetensors");
        var r = CliRunner.Run(["train", .. Hyper, "--epochs", (c.Epoch + 1).ToString(), "--resume", ck, "--checkpoint", ck, "--out", resumed]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(c.Epoch + 1, r.Json.GetProperty("epochs").GetInt32());
        Assert.True(File.Exists(resumed));
        Assert.Equal(c.Epoch + 1, Checkpoint.Load<float>(ck).Epoch);
    }

    [Fact]
    public void Resume_alone_finishes_a_killed_run_like_an_uninterrupted_one()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("ck.safetensors");
        // the default cosine rate spans the 300 epochs: the resumed run takes them, and everything else, from the checkpoint
        string[] job = ["--data", Digits, "--batch", "64", "--lr", "0.003", "--layers", "64,32,10", "--epochs", "300", "--quiet", "--json"];
        var whole = CliRunner.Run(["train", .. job, "--out", tmp.File("whole.safetensors")]);
        Assert.True(whole.ExitCode == 0, whole.Stderr);

        RunAndKill(ck, 0, ["train", .. job, "--checkpoint", ck, "--out", tmp.File("never.safetensors")]);
        int killedAt = Checkpoint.Load<float>(ck).Epoch;
        Assert.InRange(killedAt, 1, 299);

        string resumed = tmp.File("resumed.safetensors");
        var r = CliRunner.Run("train", "--resume", ck, "--out", resumed, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(300, r.Json.GetProperty("epochs").GetInt32());
        Assert.Equal(whole.Json.GetProperty("test_accuracy").GetDouble(), r.Json.GetProperty("test_accuracy").GetDouble());
        TrainingAssert.BitIdentical(ModelFile.Load<float>(tmp.File("whole.safetensors")).Network, ModelFile.Load<float>(resumed).Network);
    }
}
