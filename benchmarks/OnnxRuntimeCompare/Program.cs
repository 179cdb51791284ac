// Backprop's compiled inference (InferenceNetwork, what `backprop bench infer` runs) against ONNX Runtime on the
// model's own `backprop export` ONNX file, pair by pair in one process: for each batch size and thread count the two
// run back to back, each warmed up and then timed as the best of many short repetitions, so a shared machine whose
// speed drifts still compares like with like. One line per pair, tab-separated: name, Backprop samples/s, ONNX Runtime
// samples/s (benchmarks/compare.sh collects them and takes the median ratio).
//
// At 1 thread both run on the calling thread (ONNX Runtime with one intra-op thread has no pool), so the pair is
// also timed by that thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a loaded machine the time the thread waited for a
// core is left out, which wall-clock time cannot do. Those lines say "(cpu time)".
//
//   dotnet run -c Release --project benchmarks/OnnxRuntimeCompare -- --model M.safetensors --onnx M.onnx
//       [--batches 1,128,1024] [--threads 1,2] [--rounds 1] [--reps 20] [--rep-seconds 0.05]
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Backprop.Kernels;
using Backprop.Nn.Inference;
using Backprop.Training;
using Microsoft.ML.OnnxRuntime;

var opts = new Dictionary<string, string>();
for (int i = 0; i + 1 < args.Length; i += 2) opts[args[i].TrimStart('-')] = args[i + 1];
string Get(string name, string fallback) => opts.TryGetValue(name, out var v) ? v : fallback;
int[] Ints(string name, string fallback) => [.. Get(name, fallback).Split(',').Select(int.Parse)];
if (!opts.ContainsKey("model") || !opts.ContainsKey("onnx"))
{
    Console.Error.WriteLine("usage: OnnxRuntimeCompare --model M.safetensors --onnx M.onnx [--batches 1,128,1024] [--threads 1,2] [--rounds 1] [--reps 20] [--rep-seconds 0.05]");
    return 2;
}
var batches = Ints("batches", "1,128,1024");
var threadCounts = Ints("threads", "1,2");
int rounds = int.Parse(Get("rounds", "1"));
int reps = int.Parse(Get("reps", "20"));
double repSeconds = double.Parse(Get("rep-seconds", "0.05"), CultureInfo.InvariantCulture);
var network = ModelFile.Load<float>(opts["model"]).Network;

for (int round = 0; round < rounds; round++)
    foreach (int threads in threadCounts)
    {
        using var context = new ComputeContext(threads);
        var compiled = InferenceNetwork<float>.Compile(network, context);
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        using var session = new InferenceSession(opts["onnx"], options);
        foreach (int batch in batches)
        {
            var rng = new Random(0);
            var x = new float[batch * network.Inputs];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var y = new float[batch * network.Outputs];
            using var input = OrtValue.CreateTensorValueFromMemory(x, [batch, network.Inputs]);
            using var output = OrtValue.CreateTensorValueFromMemory(new float[batch * network.Outputs], [batch, network.Outputs]);
            using var run = new RunOptions();
            string[] inNames = [session.InputNames[0]], outNames = [session.OutputNames[0]];
            OrtValue[] ins = [input], outs = [output];
            var ours = Time(() => compiled.Predict(x, y, batch), reps, repSeconds);
            var theirs = Time(() => session.Run(run, inNames, ins, outNames, outs), reps, repSeconds);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"infer batch {batch}, {threads} thread(s) (samples/s)\t{batch / ours.Wall:F1}\t{batch / theirs.Wall:F1}"));
            if (threads == 1)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"infer batch {batch}, 1 thread (samples/s, cpu time)\t{batch / ours.Cpu:F1}\t{batch / theirs.Cpu:F1}"));
        }
    }
return 0;

// Seconds per call, wall-clock and this thread's CPU time, each the best over the repetitions, after a warm-up of at
// least 0.5 s and 10 calls (the JIT tiers up, buffers grow, ONNX Runtime's arena fills).
static (double Wall, double Cpu) Time(Action call, int reps, double repSeconds)
{
    var warm = Stopwatch.StartNew();
    long calls = 0;
    while (warm.Elapsed.TotalSeconds < 0.5 || calls < 10) { call(); calls++; }
    long inner = Math.Max(1, (long)(calls * repSeconds / warm.Elapsed.TotalSeconds));
    double wall = double.MaxValue, cpu = double.MaxValue;
    for (int r = 0; r < reps; r++)
    {
        double c0 = ThreadCpuSeconds();
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < inner; i++) call();
        wall = Math.Min(wall, Stopwatch.GetElapsedTime(t0).TotalSeconds / inner);
        cpu = Math.Min(cpu, (ThreadCpuSeconds() - c0) / inner);
    }
    return (wall, cpu);
}

static double ThreadCpuSeconds()
{
    if (!OperatingSystem.IsLinux()) return Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;   // wall time elsewhere
    clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, out var ts);
    return ts.Seconds + ts.Nanoseconds * 1e-9;
}

[DllImport("libc", SetLastError = true)]
static extern int clock_gettime(int clock, out Timespec ts);

[StructLayout(LayoutKind.Sequential)]
struct Timespec
{
    public long Seconds;
    public long Nanoseconds;
}
