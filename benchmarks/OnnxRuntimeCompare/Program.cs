// Backprop's compiled inference (what `backprop bench infer` runs) against ONNX Runtime on the model's own
// `backprop export` ONNX file, pair by pair in one process: for each batch size and thread count the two run back to
// back, each warmed up and then timed as the best of several repetitions, so a shared machine whose speed drifts still
// compares like with like. One line per pair, tab-separated: name, Backprop samples/s, ONNX Runtime samples/s
// (benchmarks/compare.sh collects them and takes the median ratio).
//
//   dotnet run -c Release --project benchmarks/OnnxRuntimeCompare -- --model M.safetensors --onnx M.onnx
//       [--batches 1,128,1024] [--threads 1,2] [--rounds 1] [--reps 7] [--rep-seconds 0.2]
using System.Diagnostics;
using System.Globalization;
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
    Console.Error.WriteLine("usage: OnnxRuntimeCompare --model M.safetensors --onnx M.onnx [--batches 1,128,1024] [--threads 1,2] [--rounds 1] [--reps 7] [--rep-seconds 0.2]");
    return 2;
}
var batches = Ints("batches", "1,128,1024");
var threadCounts = Ints("threads", "1,2");
int rounds = int.Parse(Get("rounds", "1"));
int reps = int.Parse(Get("reps", "7"));
double repSeconds = double.Parse(Get("rep-seconds", "0.2"), CultureInfo.InvariantCulture);
var network = ModelFile.Load<float>(opts["model"]).Network;

for (int round = 0; round < rounds; round++)
    foreach (int threads in threadCounts)
    {
        using var context = new ComputeContext(threads);
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
            var ours = InferenceBenchmark.Run(network, batch, context, reps, repSeconds);
            double theirs = OnnxRuntime(session, batch, network.Inputs, network.Outputs, reps, repSeconds);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"infer batch {batch}, {threads} thread(s) (samples/s)\t{ours.SamplesPerSecond:F1}\t{theirs:F1}"));
        }
    }
return 0;

// Samples per second of session.Run on a seeded random batch, measured as InferenceBenchmark measures ours: warm-up
// (at least 0.5 s and 10 calls), then the best of the repetitions. Input and output live in preallocated OrtValues.
static double OnnxRuntime(InferenceSession session, int batch, int inputs, int outputs, int reps, double repSeconds)
{
    var rng = new Random(0);
    var x = new float[batch * inputs];
    for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
    var y = new float[batch * outputs];
    using var input = OrtValue.CreateTensorValueFromMemory(x, [batch, inputs]);
    using var output = OrtValue.CreateTensorValueFromMemory(y, [batch, outputs]);
    using var run = new RunOptions();
    string[] inNames = [session.InputNames[0]], outNames = [session.OutputNames[0]];
    OrtValue[] ins = [input], outs = [output];
    var warm = Stopwatch.StartNew();
    long calls = 0;
    while (warm.Elapsed.TotalSeconds < 0.5 || calls < 10) { session.Run(run, inNames, ins, outNames, outs); calls++; }
    long inner = Math.Max(1, (long)(calls * repSeconds / warm.Elapsed.TotalSeconds));
    double best = double.MaxValue;
    for (int r = 0; r < reps; r++)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (long i = 0; i < inner; i++) session.Run(run, inNames, ins, outNames, outs);
        best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / inner);
    }
    return batch / best;
}
