using System.CommandLine;
using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Cli.Commands;

public static class BenchCommands
{
    public static Command Create(Backprop.Nn.Catalog? catalog = null)
    {
        catalog ??= Backprop.Nn.Catalog.Default;
        var bench = new Command("bench", "Benchmarks; each prints one JSON object on the last line");
        bench.Subcommands.Add(Train());
        bench.Subcommands.Add(GemmBench());
        bench.Subcommands.Add(Peak());
        bench.Subcommands.Add(Infer(catalog));
        return bench;
    }

    /// <summary>
    /// Peaks measured in this process by (precision, threads): a fact of the hardware, measured once per process so
    /// that the figures of one run are set against the same peak. (Kept here, not in the library, which holds no
    /// mutable static state.)
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(bool Float64, int Threads), PeakResult> Peaks = new();

    private static PeakResult Peak(bool float64, int threads) => Peaks.GetOrAdd((float64, threads), key => PeakFlops.Measure(key.Float64, key.Threads));

    /// <summary>The peak at the context's thread count.</summary>
    private static PeakResult PeakFor(bool float64, ComputeContext context) => Peak(float64, context.Threads);

    /// <summary>
    /// "caches": the caches this CPU reports (null where it reports none) and "blocks": the GEMM's cache blocks the
    /// context runs with, so that a figure can be read against the machine it was taken on.
    /// </summary>
    private static void WriteCachesAndBlocks(System.Text.Json.Utf8JsonWriter w, ComputeContext context)
    {
        if (CpuCaches.ThisCpu is { } c)
        {
            w.WriteStartObject("caches");
            w.WriteNumber("l1d_bytes", c.L1dBytes);
            w.WriteNumber("l1d_ways", c.L1dWays);
            w.WriteNumber("l2_bytes", c.L2Bytes);
            w.WriteNumber("l2_ways", c.L2Ways);
            w.WriteNumber("l3_bytes_per_core", c.L3BytesPerCore);
            w.WriteNumber("l3_ways", c.L3Ways);
            w.WriteString("source", c.Source);
            w.WriteEndObject();
        }
        else w.WriteNull("caches");
        w.WriteStartObject("blocks");
        w.WriteNumber("kc_bytes", context.Tuning.KcBytes);
        w.WriteNumber("float64_kc_bytes", context.Tuning.KcBytesFor<double>());
        w.WriteNumber("mc_bytes", context.Tuning.McBytes);
        w.WriteNumber("nc", context.Tuning.Nc);
        w.WriteEndObject();
    }

    /// <summary>
    /// Refuses a batch whose widest activation (batch × the widest layer's values, the largest buffer a forward or
    /// backward pass holds) is more than one .NET array holds: that product overflowed int into an OverflowException.
    /// </summary>
    /// <param name="batch">The --batch value.</param>
    /// <param name="widths">The network's inputs and each layer's outputs.</param>
    /// <param name="network">The flag that gave the network, for the message ("--layers 4,5,3").</param>
    private static void CheckBatch(int batch, IEnumerable<int> widths, string network)
    {
        int widest = widths.Max();
        long values = (long)batch * widest;
        if (values > Array.MaxLength)
            throw new UsageException($"--batch {batch} with {network}: {batch} rows × {widest} (the widest layer) = {values} values, more than one array holds ({Array.MaxLength}); give a smaller --batch");
    }

    /// <summary>Refuses a GEMM operand of more values than one .NET array holds (m·n of 100000 × 100000 overflowed into an OverflowException).</summary>
    private static void CheckOperand(string matrix, string flags, int rows, int cols)
    {
        long values = (long)rows * cols;
        if (values > Array.MaxLength)
            throw new UsageException($"{flags}: {matrix} would be {rows}×{cols} = {values} values, more than one array holds ({Array.MaxLength})");
    }

    /// <summary>
    /// bench infer's measurement of <paramref name="net"/> in its own precision: the result, the FLOPs of a sample as
    /// `summary` counts them at inference (2·in·out a dense layer, plus its bias and activation) and the network as text.
    /// A model file's (<paramref name="path"/>) widths are checked against --batch first, as --layers' are before.
    /// </summary>
    private static (Backprop.Nn.Inference.InferenceBenchmarkResult Result, long FlopsPerSample, string Described) InferOnce<T>(
        Backprop.Nn.Sequential<T> net, int batch, string? path, ComputeContext context) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        if (path is not null) CheckBatch(batch, [net.Inputs, .. net.Layers.Select(l => l.Outputs)], $"--model {path}");
        return (Backprop.Nn.Inference.InferenceBenchmark.Run(net, batch, context), Backprop.Nn.ModelSummary.Of(net).Flops, net.ToString());
    }

    private static Command Infer(Backprop.Nn.Catalog catalog)
    {
        var model = new Option<string?>("--model") { Description = "A model file (safetensors); without it, a ReLU MLP of --layers from a seeded random init" };
        var layers = new Option<string>("--layers") { Description = "Layer sizes when no --model is given", DefaultValueFactory = _ => "784,512,512,10" };
        var batch = new Option<int>("--batch") { Description = "Rows per call", DefaultValueFactory = _ => 128 };
        var threads = new Option<int>("--threads") { Description = "Threads (0: all cores)", DefaultValueFactory = _ => 1 };
        var dtype = new Option<string>("--dtype") { Description = "Precision the model runs in", DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var json = new Option<bool>("--json") { Description = "JSON only" };
        var cmd = new Command("infer", "Forward pass alone (evaluation mode, compiled: packed weights, fused bias and activation, no tape): samples per second and µs per call, the best of several repetitions after a warm-up")
            { model, layers, batch, threads, dtype, json };
        cmd.SetAction(r =>
        {
            int b = r.GetValue(batch), t = r.GetValue(threads);
            if (b <= 0) throw new UsageException($"--batch {b}: must be at least 1");
            Cli.CheckThreads(t);
            string? path = r.GetValue(model);
            if (path is not null && r.GetResult(layers) is { Implicit: false }) throw new UsageException("--model gives the network: give it without --layers");
            if (path is null) CheckBatch(b, TrainCommand.ParseLayers(r.GetValue(layers)!), $"--layers {r.GetValue(layers)}");
            bool f64 = r.GetValue(dtype) == "float64";
            var mlp = path is null ? Initializers.Mlp<float>(TrainCommand.ParseLayers(r.GetValue(layers)!), "relu", 0, InitKind.HeUniform) : null;
            using var context = new ComputeContext(t);
            // a model file is read in the precision it runs in: a float64 model's weights are never rounded through float32
            var (res, flopsPerSample, described) = f64
                ? InferOnce(path is not null ? ModelFile.Load<double>(path, catalog).Network : mlp!.Cast<double>(), b, path, context)
                : InferOnce(path is not null ? ModelFile.Load<float>(path, catalog).Network : mlp!, b, path, context);
            double gflops = res.SamplesPerSecond * flopsPerSample / 1e9;
            var peak = PeakFor(f64, context);
            double fraction = gflops / peak.Gflops;
            if (!r.GetValue(json))
                Console.WriteLine($"{described} batch {b}, {context.Threads} thread(s), {r.GetValue(dtype)}: {res.SamplesPerSecond:N0} samples/s, {res.RunMicroseconds:F1} µs per call, " +
                    $"{gflops:F1} GFLOPS = {fraction:P1} of the {peak.Gflops:F1} GFLOPS peak, {res.AllocatedBytesPerRun:F1} bytes allocated per call");
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("samples_per_s", Math.Round(res.SamplesPerSecond, 1));
                w.WriteNumber("run_us", Math.Round(res.RunMicroseconds, 2));
                w.WriteNumber("batch", b);
                w.WriteNumber("threads", context.Threads);
                w.WriteNumber("allocated_bytes_per_run", res.AllocatedBytesPerRun);
                w.WriteNumber("flops_per_sample", flopsPerSample);
                w.WriteNumber("gflops", Math.Round(gflops, 2));
                w.WriteNumber("peak_gflops", Math.Round(peak.Gflops, 2));
                w.WriteNumber("fraction_of_peak", Math.Round(fraction, 4));
                w.WriteEndObject();
            });
            return 0;
        });
        return cmd;
    }

    private static Command Peak()
    {
        var threads = new Option<int>("--threads") { Description = "Threads, each running its own loop (0: all cores)", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "JSON only" };
        var cmd = new Command("peak", $"This core's float32 and float64 FMA peak: {PeakFlops.Accumulators} independent fused multiply-add chains on registers only") { threads, json };
        cmd.SetAction(r =>
        {
            int t = r.GetValue(threads);
            Cli.CheckThreads(t);
            if (t == 0) t = Environment.ProcessorCount;
            var f32 = Peak(false, t);
            var f64 = Peak(true, t);
            if (!r.GetValue(json))
            {
                Console.WriteLine($"float32: {f32.Gflops:F1} GFLOPS ({f32.GflopsPerThread:F1} per thread), {f32.Width}, {f32.Lanes} lanes, {t} thread(s)");
                Console.WriteLine($"float64: {f64.Gflops:F1} GFLOPS ({f64.GflopsPerThread:F1} per thread), {f64.Width}, {f64.Lanes} lanes, {t} thread(s)");
            }
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("float32_gflops", Math.Round(f32.Gflops, 2));
                w.WriteNumber("float64_gflops", Math.Round(f64.Gflops, 2));
                w.WriteNumber("threads", t);
                w.WriteString("width", f32.Width.ToString());
                w.WriteNumber("accumulators", PeakFlops.Accumulators);
                w.WriteEndObject();
            });
            return 0;
        });
        return cmd;
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
        var noUpdate = new Option<bool>("--no-update") { Description = "Time forward and backward alone, without the optimizer's update (what the step would cost were the update free)" };
        var cmd = new Command("train", "Training steps per second: ReLU MLP, cross-entropy, SGD momentum 0.9, float32") { layers, arch, batch, steps, threads, optimizer, noUpdate, json, profile };
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
            Cli.CheckThreads(t);
            if (spec is null) CheckBatch(b, sizes!, $"--layers {r.GetValue(layers)}");
            else CheckBatch(b, [spec.Inputs, .. spec.Layers.Select(l => l.Outputs)], $"--arch {archText}");
            var prof = r.GetValue(profile) ? new Dictionary<string, double>() : null;
            bool update = !r.GetValue(noUpdate);
            using var context = new ComputeContext(t);
            var res = spec is null
                ? TrainBenchmark.Run(sizes!, b, s, context, profile: prof, optimizer: r.GetValue(optimizer)!, update: update)
                : TrainBenchmark.Run(spec, b, s, context, profile: prof, optimizer: r.GetValue(optimizer)!, update: update);
            if (prof is not null)
                foreach (var (k, us) in prof.OrderByDescending(p => p.Value)) Console.WriteLine($"{us,10:F1} µs  {k}");
            var peak = PeakFor(false, context);
            double fraction = res.Gflops / peak.Gflops;
            if (!r.GetValue(json))
                Console.WriteLine($"{(spec is null ? string.Join("-", sizes!) : spec.ToString())} batch {b}: {res.SamplesPerSecond:N0} samples/s, {res.StepMicroseconds:F1} µs/step, {res.AllocatedBytesPerStep:F1} bytes allocated/step, "
                    + $"{res.Gflops:F1} GFLOPS = {fraction:P1} of the {peak.Gflops:F1} GFLOPS float32 peak ({context.Threads} thread(s){(update ? "" : "; forward and backward only, no update")})");
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("samples_per_s", Math.Round(res.SamplesPerSecond, 1));
                w.WriteNumber("step_us", Math.Round(res.StepMicroseconds, 2));
                w.WriteNumber("allocated_bytes_per_step", res.AllocatedBytesPerStep);
                w.WriteNumber("gflops", Math.Round(res.Gflops, 2));
                w.WriteNumber("peak_gflops", Math.Round(peak.Gflops, 2));
                w.WriteNumber("fraction_of_peak", Math.Round(fraction, 4));
                w.WriteBoolean("update", update);
                WriteCachesAndBlocks(w, context);
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
        var packedB = new Option<bool>("--packed-b") { Description = "With --trans-b: B packed once before timing, as inference packs a weight" };
        var json = new Option<bool>("--json") { Description = "JSON only" };
        var cmd = new Command("gemm", "GFLOPS of C = op(A)·op(B) (best of several repetitions after a warm-up)") { m, n, k, threads, dtype, transA, transB, packedB, json };
        cmd.SetAction(r =>
        {
            int mm = r.GetValue(m), nn = r.GetValue(n), kk = r.GetValue(k), t = r.GetValue(threads);
            if (mm <= 0 || nn <= 0 || kk <= 0) throw new UsageException("--m, --n and --k must be at least 1");
            CheckOperand("A", $"--m {mm} --k {kk}", mm, kk);
            CheckOperand("B", $"--k {kk} --n {nn}", kk, nn);
            CheckOperand("C", $"--m {mm} --n {nn}", mm, nn);
            Cli.CheckThreads(t);
            bool ta = r.GetValue(transA), tb = r.GetValue(transB);
            using var context = new ComputeContext(t);
            bool f64 = r.GetValue(dtype) == "float64";
            bool pb = r.GetValue(packedB);
            if (pb && (ta || !tb)) throw new UsageException("--packed-b packs the stored n×k B of A·Bᵀ: give it with --trans-b and without --trans-a");
            double gflops = GemmBenchmark.Run(mm, nn, kk, f64, ta, tb, context: context, packedB: pb);
            var peak = PeakFor(f64, context);
            double fraction = gflops / peak.Gflops;
            string form = $"{(ta ? $"({kk}×{mm})ᵀ" : $"{mm}×{kk}")}·{(tb ? $"({nn}×{kk})ᵀ" : $"{kk}×{nn}")}";
            if (!r.GetValue(json)) Console.WriteLine($"{form} {r.GetValue(dtype)}, {context.Threads} threads, {context.GemmPath} kernels: {gflops:F1} GFLOPS = {fraction:P1} of the {peak.Gflops:F1} GFLOPS peak");
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("gflops", Math.Round(gflops, 2));
                w.WriteNumber("peak_gflops", Math.Round(peak.Gflops, 2));
                w.WriteNumber("fraction_of_peak", Math.Round(fraction, 4));
                WriteCachesAndBlocks(w, context);
                w.WriteEndObject();
            });
            return 0;
        });
        return cmd;
    }
}
