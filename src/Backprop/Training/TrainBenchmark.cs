using System.Diagnostics;
using Backprop.Kernels;
using Backprop.Ops;

namespace Backprop.Training;

/// <summary>Allocation counts are the calling thread's plus the kernel worker threads' (not other threads of the process).</summary>
public sealed record TrainBenchmarkResult(double SamplesPerSecond, double StepMicroseconds, double AllocatedBytesPerStep, double CallerAllocatedBytesPerStep)
{
    /// <summary>Floating-point operations of one step as <see cref="TrainBenchmark.StepFlops"/> counts them.</summary>
    public double FlopsPerStep { get; init; }

    /// <summary>FLOPs per second of the timed steps.</summary>
    public double Gflops => FlopsPerStep / StepMicroseconds / 1e3;
}

/// <summary>
/// The training-step benchmark: a ReLU MLP with identity output, softmax cross-entropy on random data with random
/// class targets, SGD with momentum 0.9 at lr 0.01, in float32 — the workload of PyTorch's
/// Sequential(Linear, ReLU, …, Linear) + CrossEntropyLoss + SGD(momentum=0.9).
/// </summary>
public static class TrainBenchmark
{
    /// <summary>
    /// The floating-point operations of one training step on a batch, counted as the products do them:
    /// 2·batch·(3·Σ in·out − in₀·out₀) over the dense layers (forward x·Wᵀ, backward dW and dx, the first layer needing
    /// no dx). Element-wise work (activations, bias, loss, optimizer) is not counted: it is memory-bound, and the
    /// figure is meant to be set against the FMA peak.
    /// </summary>
    public static double StepFlops<T>(Nn.Sequential<T> network, int batch) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        double sum = 0, first = -1;
        foreach (var layer in network.Layers)
        {
            if (layer.Kind != Nn.DenseKind.KindName) continue;
            double io = (double)layer.Inputs * layer.Outputs;
            if (first < 0) first = io;
            sum += io;
        }
        return first < 0 ? 0 : 2.0 * batch * (3 * sum - first);
    }

    /// <summary>Times <paramref name="steps"/> training steps of a ReLU MLP after a warm-up, and counts their allocations.</summary>
    /// <param name="layers">The layer widths, inputs first and classes last, e.g. [784, 128, 10].</param>
    /// <param name="batch">The rows per step.</param>
    /// <param name="steps">The timed steps.</param>
    /// <param name="context">What the steps run on (null: <see cref="ComputeContext.Default"/>).</param>
    /// <param name="warmupSteps">The least number of untimed steps before timing starts.</param>
    /// <param name="warmupSeconds">The least time spent on untimed steps before timing starts (as well as <paramref name="warmupSteps"/>).</param>
    /// <param name="seed">Seeds the initial weights and the random data.</param>
    /// <param name="profile">When given, filled by a second, instrumented pass with microseconds per step by operation
    /// ("forward linear+relu …", "optimizer step", …); null skips that pass.</param>
    /// <param name="optimizer">The optimizer's registry name; "sgd" runs with momentum 0.9 at lr 0.01, others at lr 0.001.</param>
    /// <param name="update">False: the timed steps are forward and backward alone, without the optimizer's update (what
    /// the step would cost were the update free; the parameters then stay as initialised).</param>
    public static TrainBenchmarkResult Run(IReadOnlyList<int> layers, int batch, int steps, ComputeContext? context = null, int warmupSteps = 10,
        double warmupSeconds = 0.5, int seed = 0, Dictionary<string, double>? profile = null, string optimizer = "sgd", bool update = true)
        => Run(Initializers.Mlp<float>(layers, "relu", seed, InitKind.HeUniform), batch, steps, context, warmupSteps, warmupSeconds, seed, profile, optimizer, update);

    /// <summary>The same measurement on the network an architecture spec describes (norm and dropout layers in training mode).</summary>
    public static TrainBenchmarkResult Run(Nn.ArchitectureSpec spec, int batch, int steps, ComputeContext? context = null, int warmupSteps = 10,
        double warmupSeconds = 0.5, int seed = 0, Dictionary<string, double>? profile = null, string optimizer = "sgd", bool update = true)
        => Run(Initializers.Network<float>(spec, seed, InitKind.HeUniform), batch, steps, context, warmupSteps, warmupSeconds, seed, profile, optimizer, update);

    private static TrainBenchmarkResult Run(Nn.Sequential<float> net, int batch, int steps, ComputeContext? context, int warmupSteps,
        double warmupSeconds, int seed, Dictionary<string, double>? profile, string optimizer, bool update)
    {
        context ??= ComputeContext.Default;
        net.SetTraining(true);
        for (int i = 0; i < net.Layers.Count; i++) net.Layers[i].SeedRandom(Trainer<float>.LayerSeed(seed, i), 0);
        var rng = new Random(seed + 1);
        int widest = Math.Max(net.Inputs, net.Layers.Max(l => l.Outputs));
        if ((long)batch * widest > Array.MaxLength)
            throw new ArgumentException($"a batch of {batch} rows × {widest} (the widest layer) = {(long)batch * widest} values is more than one array holds ({Array.MaxLength})");
        var x = new float[batch * net.Inputs];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var y = new int[batch];
        for (int i = 0; i < y.Length; i++) y[i] = rng.Next(net.Outputs);
        var step = new TrainingStep<float>(net, batch, context);
        // The issue's workload is SGD with momentum 0.9 at lr 0.01; other optimizers use their usual rates.
        var opt = Optimizer<float>.Create(optimizer, net.Parameters().ToArray(), optimizer == "sgd" ? 0.01 : 0.001, momentum: 0.9, context: context);
        step.Load(x, y);
        void Step()
        {
            step.ForwardBackward();
            if (update) opt.Step();
        }
        // Warm up for at least warmupSeconds as well as warmupSteps: the JIT replaces its quick first code with
        // optimised code only after a method has run a while, and timing before that measures the JIT, not the step.
        var warm = Stopwatch.StartNew();
        for (int i = 0; i < warmupSteps || warm.Elapsed.TotalSeconds < warmupSeconds; i++) Step();

        long workersBefore = context.WorkerAllocatedBytesForCurrentThread;
        long callerBefore = GC.GetAllocatedBytesForCurrentThread();
        long t0 = Stopwatch.GetTimestamp(); // not a Stopwatch object: that would be an allocation inside the measured region
        for (int i = 0; i < steps; i++) Step();
        long t1 = Stopwatch.GetTimestamp();
        long callerAfter = GC.GetAllocatedBytesForCurrentThread();
        long workersAfter = context.WorkerAllocatedBytesForCurrentThread;
        double secs = (double)(t1 - t0) / Stopwatch.Frequency;
        if (profile is not null)
        {
            // A separate, instrumented pass: per-op microseconds per step, by direction. It is warmed up as the timed
            // pass is (its profiler's code and the dictionary's entries are new): without that, `--profile --steps 5`
            // gave a tiny net's instrumented step 610 µs against 38 at 200 steps.
            int timedSteps = steps;
            steps = 1;   // the warm-up's figures are per step too, and are discarded
            step.Tape.Profiler = (v, fwd, ticks, fused) =>
            {
                // A fused pair is one entry: "linear+relu" forward for z1 and h1; backward, the next layer's linear
                // with this layer's activation rule (dz = dh ⊙ f′(z)) applied to its dx.
                string op = fused is null ? v.Op!.Name : $"{v.Op!.Name}+{fused.Op!.Name}";
                string key = $"{(fwd ? "forward " : "backward")} {op,-14} {v.Name ?? ""} {v.ShapeString}";
                profile[key] = profile.GetValueOrDefault(key) + ticks * 1e6 / Stopwatch.Frequency / steps;
            };
            var warmProfile = Stopwatch.StartNew();
            for (int i = 0; i < warmupSteps || warmProfile.Elapsed.TotalSeconds < Math.Min(warmupSeconds, 0.2); i++) Step();
            profile.Clear();
            steps = timedSteps;
            var optSw = new Stopwatch();
            var allSw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) { step.ForwardBackward(); optSw.Start(); if (update) opt.Step(); optSw.Stop(); }
            allSw.Stop();
            profile["(whole step, instrumented)"] = allSw.Elapsed.TotalMicroseconds / steps;
            step.Tape.Profiler = null;
            if (update) profile["optimizer step"] = optSw.Elapsed.TotalMicroseconds / steps;
        }
        return new TrainBenchmarkResult((double)batch * steps / secs, secs * 1e6 / steps,
            (double)(callerAfter - callerBefore + workersAfter - workersBefore) / steps, (double)(callerAfter - callerBefore) / steps)
        { FlopsPerStep = StepFlops(net, batch) };
    }
}
