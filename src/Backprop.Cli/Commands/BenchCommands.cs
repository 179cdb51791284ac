using System.CommandLine;
using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Cli.Commands;

public static class BenchCommands
{
    public static Command Create()
    {
        var bench = new Command("bench", "Benchmarks; each prints one JSON object on the last line");
        bench.Subcommands.Add(Train());
        bench.Subcommands.Add(GemmBench());
        return bench;
    }

    private static Command Train()
    {
        var layers = new Option<string>("--layers") { Description = "Layer sizes", DefaultValueFactory = _ => "784,512,512,10" };
        var arch = new Option<string?>("--arch") { Description = "The network as a spec string in place of --layers (see train --arch), e.g. 784-512:ln:relu:drop0.2-10" };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "Timed steps", DefaultValueFactory = _ => 200 };
        var threads = new Option<int>("--threads") { Description = "Threads (0: all cores)", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "JSON only" };
        var profile = new Option<bool>("--profile") { Description = "Also time each op (µs per step)" };
        var optimizer = new Option<string>("--optimizer") { Description = $"{string.Join(", ", Backprop.Training.OptimizerRegistry.Default.Names)}: sgd (momentum 0.9, lr 0.01) is the reference workload, the others run at lr 0.001", DefaultValueFactory = _ => "sgd" };
        optimizer.AcceptOnlyFromAmong([.. Backprop.Training.OptimizerRegistry.Default.Names]);
        var cmd = new Command("train", "Training steps per second: ReLU MLP, cross-entropy, SGD momentum 0.9, float32") { layers, arch, batch, steps, threads, optimizer, json, profile };
        cmd.SetAction(r =>
        {
            string? archText = r.GetValue(arch);
            Backprop.Nn.ArchitectureSpec? spec = null;
            if (archText is not null)
            {
                if (r.GetResult(layers) is { Implicit: false }) throw new UsageException("--arch describes the whole network: give it without --layers");
                try { spec = Backprop.Nn.ArchitectureSpec.Parse(archText); }
                catch (Backprop.Nn.ArchitectureSpecException e) { throw new UsageException($"--arch {archText}: {e.Message}"); }
            }
            var sizes = spec is null ? TrainCommand.ParseLayers(r.GetValue(layers)!) : null;
            int b = r.GetValue(batch), s = r.GetValue(steps), t = r.GetValue(threads);
            if (b <= 0) throw new UsageException($"--batch {b}: must be at least 1");
            if (s <= 0) throw new UsageException($"--steps {s}: must be at least 1");
            if (t < 0) throw new UsageException($"--threads {t}: must be 0 (all cores) or more");
            var prof = r.GetValue(profile) ? new Dictionary<string, double>() : null;
            using var context = new ComputeContext(t);
            var res = spec is null
                ? TrainBenchmark.Run(sizes!, b, s, context, profile: prof, optimizer: r.GetValue(optimizer)!)
                : TrainBenchmark.Run(spec, b, s, context, profile: prof, optimizer: r.GetValue(optimizer)!);
            if (prof is not null)
                foreach (var (k, us) in prof.OrderByDescending(p => p.Value)) Console.WriteLine($"{us,10:F1} µs  {k}");
            if (!r.GetValue(json))
                Console.WriteLine($"{(spec is null ? string.Join("-", sizes!) : spec.ToString())} batch {b}: {res.SamplesPerSecond:N0} samples/s, {res.StepMicroseconds:F1} µs/step, {res.AllocatedBytesPerStep:F1} bytes allocated/step");
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("samples_per_s", Math.Round(res.SamplesPerSecond, 1));
                w.WriteNumber("step_us", Math.Round(res.StepMicroseconds, 2));
                w.WriteNumber("allocated_bytes_per_step", res.AllocatedBytesPerStep);
                w.WriteEndObject();
            });
            return 0;
        });
        return cmd;
    }

    private static Command GemmBench()
    {
        var m = new Option<int>("--m") { DefaultValueFactory = _ => 1024 };
        var n = new Option<int>("--n") { DefaultValueFactory = _ => 1024 };
        var k = new Option<int>("--k") { DefaultValueFactory = _ => 1024 };
        var threads = new Option<int>("--threads") { Description = "Threads (0: all cores)", DefaultValueFactory = _ => 0 };
        var dtype = new Option<string>("--dtype") { DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var transA = new Option<bool>("--trans-a") { Description = "Use Aᵀ: A stored k×m" };
        var transB = new Option<bool>("--trans-b") { Description = "Use Bᵀ: B stored n×k" };
        var json = new Option<bool>("--json") { Description = "JSON only" };
        var cmd = new Command("gemm", "GFLOPS of C = op(A)·op(B) (best of several repetitions after a warm-up)") { m, n, k, threads, dtype, transA, transB, json };
        cmd.SetAction(r =>
        {
            int mm = r.GetValue(m), nn = r.GetValue(n), kk = r.GetValue(k), t = r.GetValue(threads);
            if (mm <= 0 || nn <= 0 || kk <= 0) throw new UsageException("--m, --n and --k must be at least 1");
            if (t < 0) throw new UsageException($"--threads {t}: must be 0 (all cores) or more");
            bool ta = r.GetValue(transA), tb = r.GetValue(transB);
            using var context = new ComputeContext(t);
            double gflops = GemmBenchmark.Run(mm, nn, kk, r.GetValue(dtype) == "float64", ta, tb, context: context);
            string form = $"{(ta ? $"({kk}×{mm})ᵀ" : $"{mm}×{kk}")}·{(tb ? $"({nn}×{kk})ᵀ" : $"{kk}×{nn}")}";
            if (!r.GetValue(json)) Console.WriteLine($"{form} {r.GetValue(dtype)}, {context.Threads} threads, {context.GemmPath} kernels: {gflops:F1} GFLOPS");
            Cli.WriteJsonLine(w => { w.WriteStartObject(); w.WriteNumber("gflops", Math.Round(gflops, 2)); w.WriteEndObject(); });
            return 0;
        });
        return cmd;
    }
}
