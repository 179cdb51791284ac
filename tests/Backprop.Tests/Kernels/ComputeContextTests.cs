using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using Backprop.Data;
using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Tests.Kernels;

/// <summary>
/// The execution context: the library keeps no mutable static state; models on different contexts train at once
/// without changing each other's bits; one model answers concurrent predicts as it answers one.
/// </summary>
public class ComputeContextTests
{
    // ---- No mutable static state -------------------------------------------------------------------------------

    /// <summary>
    /// Static fields that hold a mutable object on purpose, each with why it is not shared mutable state.
    /// Keyed by "declaring type full name.field name".
    /// </summary>
    private static readonly ImmutableDictionary<string, string> Allowed = new Dictionary<string, string>
    {
        ["Backprop.Kernels.ComputeContext.<Default>k__BackingField"] =
            "the read-only default context: its thread count, tuning and kernel family never change; its worker pool " +
            "and per-thread scratch are working memory that no caller can reconfigure",
    }.ToImmutableDictionary();

    [Fact]
    public void TheLibraryHasNoMutableStaticState()
    {
        var violations = StaticState.Violations(typeof(ComputeContext).Assembly.GetTypes(), Allowed);
        Assert.True(violations.Count == 0, "mutable static state:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void TheAllowListNamesFieldsThatExist()
    {
        // A stale entry would silently allow a field of that name added later.
        var fields = typeof(ComputeContext).Assembly.GetTypes()
            .SelectMany(t => t.GetFields(StaticState.Statics).Select(f => $"{t.FullName}.{f.Name}")).ToHashSet();
        Assert.All(Allowed.Keys, k => Assert.Contains(k, fields));
    }

    [Theory]
    [InlineData(typeof(Fixtures.PublicStaticInt), "X", "not readonly")]
    [InlineData(typeof(Fixtures.StaticAutoProperty), "<Count>k__BackingField", "not readonly")]
    [InlineData(typeof(Fixtures.ThreadStaticField), "t_last", "[ThreadStatic]")]
    [InlineData(typeof(Fixtures.ReadOnlyList), "Items", "List")]
    [InlineData(typeof(Fixtures.ReadOnlyNonEmptyArray), "Names", "non-empty array")]
    [InlineData(typeof(Fixtures.ReadOnlyStringBuilder), "Text", "StringBuilder")]
    [InlineData(typeof(Fixtures.ReadOnlyMutableOptions), "Options", "JsonSerializerOptions")]
    [InlineData(typeof(Fixtures.ReadOnlyRecordWithSetter), "Settings", "not readonly")]
    public void TheCheckerFlagsEachKindOfMutableStatic(Type fixture, string field, string reason)
    {
        var v = Assert.Single(StaticState.Violations([fixture], ImmutableDictionary<string, string>.Empty));
        Assert.Contains($"{fixture.FullName}.{field}", v);
        Assert.Contains(reason, v);
    }

    [Fact]
    public void TheCheckerAcceptsConstantsAndImmutableValues()
    {
        Assert.Empty(StaticState.Violations([typeof(Fixtures.Immutable), typeof(Fixtures.Generic<>)], ImmutableDictionary<string, string>.Empty));
        // ... and an allow-listed field only when it is listed.
        Assert.Single(StaticState.Violations([typeof(Fixtures.ReadOnlyList)], ImmutableDictionary<string, string>.Empty));
        Assert.Empty(StaticState.Violations([typeof(Fixtures.ReadOnlyList)],
            ImmutableDictionary<string, string>.Empty.Add($"{typeof(Fixtures.ReadOnlyList).FullName}.Items", "a fixture")));
    }

    // ---- Two models training at once ---------------------------------------------------------------------------

    private static LabeledData Synthetic(int rows, int features, int classes, int seed)
    {
        var rng = new Random(seed);
        var x = new float[rows * features];
        var y = new int[rows];
        for (int i = 0; i < rows; i++)
        {
            y[i] = rng.Next(classes);
            for (int j = 0; j < features; j++) x[i * features + j] = (float)(rng.NextDouble() * 2 - 1) + (j % classes == y[i] ? 1f : 0f);
        }
        return new LabeledData(x, y, features);
    }

    /// <summary>Trains a fresh MLP through <see cref="Trainer{T}.TrainEpoch"/>; returns its parameters' bytes.</summary>
    private static byte[] Train(ComputeContext context, int seed, int epochs = 12)
    {
        // 64-256-256-10: 84k parameters, so that the 2-thread optimizer update is split too.
        var data = Synthetic(512, 64, 10, seed);
        var net = Initializers.Mlp<float>([64, 256, 256, 10], "relu", seed);
        var options = new TrainOptions { Seed = seed, Epochs = epochs, BatchSize = 32, LearningRate = 1e-3, Optimizer = "adam" };
        var trainer = new Trainer<float>(net, options, context);
        Assert.Same(context, trainer.Context);
        var loader = new BatchLoader(data, options.BatchSize, seed);
        var schedule = trainer.Schedule(loader.BatchesPerEpoch);
        for (int e = 1; e <= epochs; e++) trainer.TrainEpoch(loader, e, schedule);   // 16 steps each
        return net.Parameters().SelectMany(p => MemoryMarshal.AsBytes(p.Value.Span).ToArray()).ToArray();
    }

    [Fact]
    public void TwoModelsTrainingAtOnceOnTwoContextsEachGetTheirBitsAlone()
    {
        // The 2-thread context splits every product, gather and update it can, so both paths really run at once.
        using var one = new ComputeContext(1);
        using var two = new ComputeContext(2, KernelTuning.Default with { MinMacsPerThread = 1, GatherMinValuesPerThread = 16 });
        byte[] aloneOne = Train(one, seed: 1);
        long jobsBefore = two.Pool.JobsRun;
        byte[] aloneTwo = Train(two, seed: 2);
        long jobsAlone = two.Pool.JobsRun - jobsBefore;
        Assert.True(jobsAlone > 0, "the 2-thread context never split its work");
        Assert.Equal(0, one.Pool.WorkerCount);
        Assert.Equal(0, one.Pool.JobsRun);
        jobsBefore = two.Pool.JobsRun;

        byte[]? atOnceOne = null, atOnceTwo = null;
        using var start = new Barrier(2);
        var t1 = new Thread(() => { start.SignalAndWait(); atOnceOne = Train(one, seed: 1); });
        var t2 = new Thread(() => { start.SignalAndWait(); atOnceTwo = Train(two, seed: 2); });
        t1.Start(); t2.Start();
        t1.Join(); t2.Join();

        Assert.Equal(aloneOne, atOnceOne);
        Assert.Equal(aloneTwo, atOnceTwo);
        Assert.NotEqual(aloneOne, aloneTwo);   // the two runs are different runs, not one computed twice
        // Same bits are promised at any thread count, so they do not show that each model ran on its own context. The
        // pools do: the 1-thread context never started a worker or ran a split job, and the 2-thread context ran
        // exactly the split jobs it runs alone (one shared pool would have refused some to the contending caller, a
        // thread count that ignored the context would have split none or the 1-thread model's too).
        Assert.Equal(0, one.Pool.WorkerCount);
        Assert.Equal(0, one.Pool.JobsRun);
        Assert.Equal(jobsAlone, two.Pool.JobsRun - jobsBefore);
    }

    // ---- Concurrent predicts -----------------------------------------------------------------------------------

    [Theory]
    [InlineData(0)]   // the default context
    [InlineData(2)]   // a shared 2-thread context that splits even small products: callers contend for its pool
    public void EightThreadsPredictingOnOneModelGetTheAnswersOfOneThread(int threads)
    {
        using var owned = threads == 0 ? null : new ComputeContext(threads, KernelTuning.Default with { MinMacsPerThread = 1 });
        var context = owned ?? ComputeContext.Default;
        var net = Initializers.Mlp<float>([64, 96, 48, 10], "tanh", seed: 7);
        var inputs = Enumerable.Range(0, 8).Select(i =>
        {
            var rng = new Random(100 + i);
            var x = new Tensor<float>(20 + i, 64);
            for (int j = 0; j < x.Length; j++) x[j] = (float)(rng.NextDouble() * 2 - 1);
            return x;
        }).ToArray();
        var alone = inputs.Select(x => net.Predict(x, context).Span.ToArray()).ToArray();

        var got = new float[8][][];
        using var start = new Barrier(8);
        var threadsRunning = Enumerable.Range(0, 8).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            got[i] = Enumerable.Range(0, 25).Select(_ => net.Predict(inputs[i], context).Span.ToArray()).ToArray();
        })).ToArray();
        foreach (var t in threadsRunning) t.Start();
        foreach (var t in threadsRunning) t.Join();

        for (int i = 0; i < 8; i++)
            Assert.All(got[i], answer => Assert.Equal(alone[i], answer));   // float equality here is bit equality: no NaNs
    }

    // ---- The context itself ------------------------------------------------------------------------------------

    [Fact]
    public void TheDefaultContextUsesAllCoresAndTheBestKernelsAndOutlivesDispose()
    {
        var d = ComputeContext.Default;
        Assert.Equal(Environment.ProcessorCount, d.Threads);
        Assert.Equal(ComputeContext.BestGemmPath, d.GemmPath);
        Assert.Same(KernelTuning.Default, d.Tuning);
        d.Dispose();
        using var c = new ComputeContext(0);
        Assert.Equal(Environment.ProcessorCount, c.Threads);
        Assert.Same(d, new Tape<float>().Context);
        Assert.Same(c, new Tape<float>(c).Context);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnOpRecordedOnTwoTapesRunsOnTheContextOfTheTapeThatRunsIt(bool fusion)
    {
        var tuning = KernelTuning.Default with { MinMacsPerThread = 1 };   // every product here is split
        using var first = new ComputeContext(2, tuning);
        using var second = new ComputeContext(2, tuning);
        var rng = new Random(5);
        Tensor<double> Random(int r, int c)
        {
            var t = new Tensor<double>(r, c);
            for (int i = 0; i < t.Length; i++) t[i] = rng.NextDouble() - 0.5;
            return t;
        }
        var w1 = Var<double>.Parameter(Random(48, 40));
        var w2 = Var<double>.Parameter(Random(40, 48));
        // The same op objects, recorded on both tapes: a linear layer (fused with its activation when fusion is on)
        // and a product.
        var linear = new LinearOp<double>(hasBias: false);
        var relu = new ActivationOp<double>(new Relu<double>());
        var matmul = new MatMulOp<double>(false, true);
        (Tape<double> Tape, Var<double> Loss) Record(ComputeContext context)
        {
            var tape = new Tape<double>(context) { Fusion = fusion };
            var x = tape.Leaf(Random(64, 40));
            var h = tape.Record(relu, tape.Record(linear, x, w1));
            return (tape, Functional.Sum(tape.Record(matmul, h, w2)));
        }
        var (tape1, loss1) = Record(first);
        var (tape2, loss2) = Record(second);

        long firstJobs = first.Pool.JobsRun, secondJobs = second.Pool.JobsRun;
        tape1.Forward();
        tape1.Backward(loss1);
        Assert.True(first.Pool.JobsRun - firstJobs >= 5, "the first tape's products ran elsewhere");   // 2 forward, 3+ backward
        Assert.Equal(secondJobs, second.Pool.JobsRun);

        firstJobs = first.Pool.JobsRun;
        tape2.Forward();
        tape2.Backward(loss2);
        Assert.True(second.Pool.JobsRun - secondJobs >= 5, "the second tape's products ran elsewhere");
        Assert.Equal(firstJobs, first.Pool.JobsRun);
    }

    [Fact]
    public void AForcedKernelFamilyTheCpuLacksAndUnusableSettingsAreRefused()
    {
        foreach (var path in new[] { GemmPath.Avx512, GemmPath.Avx2 })
        {
            if (ComputeContext.IsSupported(path)) continue;
            Assert.Throws<PlatformNotSupportedException>(() => new ComputeContext(1, gemmPath: path));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(-1));
        // A thread count is a count of dedicated threads: 10000 would start 9999 of them.
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(10000));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(ComputeContext.MaxThreads + 1));
        Assert.InRange(ComputeContext.MaxThreads, Math.Max(64, Environment.ProcessorCount), 10000);
        using (var most = new ComputeContext(ComputeContext.MaxThreads)) Assert.Equal(ComputeContext.MaxThreads, most.Threads);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(2, KernelTuning.Default with { ChunksPerThread = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(2, KernelTuning.Default with { MinMacsPerThread = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputeContext(2, KernelTuning.Default with { GatherMinValuesPerThread = 0 }));
    }

    // ---- Lifetime -----------------------------------------------------------------------------------------------

    /// <summary>Runs a product split across a new 2-thread context on this (long-lived) thread; returns a weak reference to the context.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference RunASplitProduct(bool dispose)
    {
        var context = new ComputeContext(2, KernelTuning.Default with { MinMacsPerThread = 1 });
        int m = 64, n = 80, k = 70;
        var c = new float[m * n];
        Gemm.Multiply<float>(context, false, false, m, n, k, new float[m * k], new float[k * n], c, false);
        Assert.Equal(1, context.Pool.JobsRun);
        if (dispose) context.Dispose();
        return new WeakReference(context);
    }

    private static void Collect(WeakReference weak)
    {
        for (int i = 0; i < 5 && weak.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AContextThatRanASplitProductIsCollectedOnceDropped(bool dispose)
    {
        // The calling thread's scratch (its packing buffers and job) lives on in the context's thread-local store; it
        // must not refer back to the context, or every thread that ever ran a split product would keep it alive.
        var weak = RunASplitProduct(dispose);
        Collect(weak);
        Assert.False(weak.IsAlive, $"a {(dispose ? "disposed" : "dropped")} context is still reachable");
    }

    /// <summary>Runs a split product on <paramref name="context"/>; returns a weak reference to this thread's scratch.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference RunAndTakeScratch(ComputeContext context)
    {
        int m = 64, n = 80, k = 70;
        Gemm.Multiply<float>(context, false, false, m, n, k, new float[m * k], new float[k * n], new float[m * n], false);
        return new WeakReference(context.Scratch);
    }

    [Fact]
    public void DisposeFreesTheScratchOfEveryThreadWhileTheContextIsStillHeld()
    {
        var context = new ComputeContext(2, KernelTuning.Default with { MinMacsPerThread = 1 });
        var scratch = RunAndTakeScratch(context);
        context.Dispose();
        Collect(scratch);
        Assert.False(scratch.IsAlive, "a disposed context keeps its pinned packing buffers");
        // ... and the disposed context still computes, on the caller, with scratch of its own.
        var c = new float[6 * 40];
        Gemm.Multiply<float>(context, false, false, 6, 40, 30, Enumerable.Repeat(1f, 6 * 30).ToArray(), Enumerable.Repeat(2f, 30 * 40).ToArray(), c, false);
        Assert.All(c, v => Assert.Equal(60f, v));
        GC.KeepAlive(context);
    }

    // ---- A finisher that runs a product --------------------------------------------------------------------------

    /// <summary>Counts the blocks of C it is handed and, for each, runs a nested product on the same context.</summary>
    private sealed class NestedProductFinish(ComputeContext context, int n, float[] na, float[] nb, float[] nestedExpected) : IGemmBlockFinish
    {
        public const int M = 24, N = 40, K = 30;
        public readonly int[] Covered = new int[64 * n];
        public int WrongNested;

        public void Finish(int i0, int i1, int j0, int j1)
        {
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) Interlocked.Increment(ref Covered[i * n + j]);
            var nc = new float[M * N];
            Gemm.Multiply<float>(context, false, false, M, N, K, na, nb, nc, false);   // would split, if the pool were free
            if (!nc.AsSpan().SequenceEqual(nestedExpected)) Interlocked.Increment(ref WrongNested);
        }
    }

    [Fact]
    public void AFinisherThatRunsAProductOnTheSameContextLeavesTheRunningProductAlone()
    {
        var rng = new Random(11);
        float[] Random(int length) => Enumerable.Range(0, length).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        int m = 64, n = 80, k = 70;
        int M = NestedProductFinish.M, N = NestedProductFinish.N, K = NestedProductFinish.K;
        var a = Random(m * k); var b = Random(k * n);
        var na = Random(M * K); var nb = Random(K * N);
        using var serial = new ComputeContext(1);
        using var context = new ComputeContext(2, KernelTuning.Default with { MinMacsPerThread = 1 }, serial.GemmPath);
        var expected = new float[m * n];
        var nestedExpected = new float[M * N];
        Gemm.Multiply<float>(serial, false, false, m, n, k, a, b, expected, false);
        Gemm.Multiply<float>(serial, false, false, M, N, K, na, nb, nestedExpected, false);

        for (int round = 0; round < 50; round++)
        {
            var finish = new NestedProductFinish(context, n, na, nb, nestedExpected);
            var c = new float[m * n];
            long jobs = context.Pool.JobsRun;
            Gemm.Multiply<float>(context, false, false, m, n, k, a, b, c, false, finish: finish);
            Assert.Equal(jobs + 1, context.Pool.JobsRun);   // the outer product was split; the nested ones ran alone
            Assert.Equal(expected, c);
            Assert.All(finish.Covered, count => Assert.Equal(1, count));   // each block of C finished exactly once
            Assert.Equal(0, finish.WrongNested);
        }
    }

    /// <summary>On the calling thread, optionally waits (up to 2 s) until a worker has finished a block.</summary>
    private sealed class WaitForTheWorker(int caller, bool wait) : IGemmBlockFinish
    {
        public volatile bool WorkerFinished;

        public void Finish(int i0, int i1, int j0, int j1)
        {
            if (Environment.CurrentManagedThreadId != caller) { WorkerFinished = true; return; }
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (wait && !WorkerFinished && clock.ElapsedMilliseconds < 2000) Thread.SpinWait(20);
        }
    }

    [Fact]
    public void AWorkerThatFoundEveryChunkTakenHasItsBuffersReadyWhenItRunsOne()
    {
        // Whether a sleeping worker wakes before the caller has taken both chunks of a small product is timing, so
        // the scene is played on 20 fresh contexts: without the reservation, some worker grows its buffers.
        for (int round = 0; round < 20; round++)
        {
            using var context = new ComputeContext(2, KernelTuning.Default with { MinMacsPerThread = 1 });
            int m = 16, n = 64, k = 64;   // two chunks of a small product: the caller may run both before a sleeping worker wakes
            var a = new float[m * k]; var b = new float[k * n]; var c = new float[m * n];
            int me = Environment.CurrentManagedThreadId;
            // The worker starts and runs a chunk of a shallower product (smaller packing buffers), then falls asleep.
            var warm = new WaitForTheWorker(me, wait: true);
            Gemm.Multiply<float>(context, false, false, m, n, 4, a, b, c, false, finish: warm);
            Assert.True(warm.WorkerFinished, "the worker never ran a chunk");
            Thread.Sleep(20);
            Gemm.Multiply<float>(context, false, false, m, n, k, a, b, c, false, finish: new WaitForTheWorker(me, wait: false));
            // Now the caller holds its chunk until the worker has run the other one.
            long before = context.WorkerAllocatedBytesForCurrentThread;
            var finish = new WaitForTheWorker(me, wait: true);
            Gemm.Multiply<float>(context, false, false, m, n, k, a, b, c, false, finish: finish);
            Assert.True(finish.WorkerFinished, "the worker never ran a chunk");
            Assert.Equal(0, context.WorkerAllocatedBytesForCurrentThread - before);
        }
    }

    [Fact]
    public void DisposeEndsTheWorkersAndTheContextStillComputesTheSameProductOnTheCaller()
    {
        var rng = new Random(8);
        int m = 64, n = 80, k = 70;
        var a = Enumerable.Range(0, m * k).Select(_ => (float)rng.NextDouble()).ToArray();
        var b = Enumerable.Range(0, k * n).Select(_ => (float)rng.NextDouble()).ToArray();
        var context = new ComputeContext(2, KernelTuning.Default with { MinMacsPerThread = 1 });
        var before = new float[m * n];
        Gemm.Multiply<float>(context, false, false, m, n, k, a, b, before, false);
        Assert.Equal(1, context.Pool.WorkerCount);
        context.Dispose();
        Assert.True(context.Pool.JoinWorkers(TimeSpan.FromSeconds(10)), "a worker thread outlived Dispose");
        var after = new float[m * n];
        Gemm.Multiply<float>(context, false, false, m, n, k, a, b, after, false);
        Assert.Equal(before, after);
    }
}

/// <summary>Finds static fields that hold mutable state, by reflection.</summary>
internal static partial class StaticState
{
    [System.Text.RegularExpressions.GeneratedRegex(@"^<>c|^<[^>]*>O(__|$|`)")]
    private static partial System.Text.RegularExpressions.Regex DelegateCache();

    public const BindingFlags Statics = BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
    private const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;

    /// <summary>One line per static field of <paramref name="types"/> that is mutable or holds a mutable object, unless allowed.</summary>
    public static List<string> Violations(IEnumerable<Type> types, IReadOnlyDictionary<string, string> allowed)
    {
        var found = new List<string>();
        foreach (var type in types)
        {
            // Generated from Interop/onnx-subset.proto by Grpc.Tools at build time (message parsers, descriptors): not
            // code we write, and its statics are set once by the generated static constructors.
            if (type.Namespace?.StartsWith("Backprop.Interop.Onnx", StringComparison.Ordinal) == true) continue;
            // Written by the [GeneratedRegex] source generator: a cached Regex and its SearchValues, immutable in
            // behaviour though their fields are not readonly.
            if (type.Namespace == "System.Text.RegularExpressions.Generated") continue;
            // Written by the System.Text.Json source generator (Training/TrainingJsonContext, Data/DataJsonContext): its
            // Default context fills its type-metadata caches on first use and holds the encoded property names; the
            // options it writes files with are made read-only (ModelFile.JsonOptions), so no caller can change them.
            if (typeof(System.Text.Json.Serialization.JsonSerializerContext).IsAssignableFrom(type)) continue;
            // Delegate caches of the compiler: lambdas ("<>c", fields "<>9" and "<>9__…") and method groups ("<>O" and
            // "<Method>O__…", fields "<0>__Name"). The compiler stores a delegate there on first use; every write
            // stores an equal delegate, so no state changes meaning.
            if (type.IsDefined(typeof(CompilerGeneratedAttribute)) && DelegateCache().IsMatch(type.Name)) continue;
            var closed = Close(type);
            foreach (var field in type.GetFields(Statics))
            {
                if (field.IsLiteral) continue;   // const
                string name = $"{type.FullName}.{field.Name}";
                string? reason = field.IsDefined(typeof(ThreadStaticAttribute)) ? "[ThreadStatic]: per-thread global state"
                    : !field.IsInitOnly ? "not readonly"
                    : MutableValue(closed, field);
                if (reason is not null && !allowed.ContainsKey(name)) found.Add($"{name}: {reason}");
            }
        }
        return found;
    }

    /// <summary>A generic type definition closed over float (or double) so that its statics can be read; null if neither fits.</summary>
    private static Type? Close(Type type)
    {
        if (!type.ContainsGenericParameters) return type;
        foreach (var arg in new[] { typeof(float), typeof(double) })
        {
            try { return type.MakeGenericType(Enumerable.Repeat(arg, type.GetGenericArguments().Length).ToArray()); }
            catch (ArgumentException) { }   // a constraint the argument does not meet
        }
        return null;
    }

    private static string? MutableValue(Type? closed, FieldInfo field)
    {
        if (closed is null)
            return field.FieldType.IsValueType || field.FieldType == typeof(string) ? null : "a reference in a generic type that cannot be closed to read it";
        var f = closed == field.DeclaringType ? field : closed.GetField(field.Name, Statics)!;
        return Mutable(f.GetValue(null), new HashSet<object>(ReferenceEqualityComparer.Instance), depth: 0);
    }

    /// <summary>Why <paramref name="value"/> can be changed through a reference to it, or null when it cannot.</summary>
    private static string? Mutable(object? value, HashSet<object> seen, int depth)
    {
        if (value is null) return null;
        var t = value.GetType();
        if (t.IsPrimitive || t.IsEnum || value is string or decimal or Type or MemberInfo or Pointer) return null;
        if (value is Delegate d) return d.Target is null ? null : Mutable(d.Target, seen, depth + 1);
        if (value is Array a) return a.Length == 0 ? null : $"a non-empty array ({t.Name}) whose elements can be written";
        if (value is JsonSerializerOptions o) return o.IsReadOnly ? null : "JsonSerializerOptions not made read-only";
        if (!t.IsValueType && !seen.Add(value)) return null;
        if (depth > 20) return $"a {t.Name} nested too deeply to check";
        // The immutable and frozen collections cannot change; what they hold might.
        if (t.Namespace is "System.Collections.Immutable" or "System.Collections.Frozen" && value is IEnumerable items)
        {
            foreach (var item in items)
                if (Mutable(item, seen, depth + 1) is { } r) return $"{t.Name} holding {r}";
            return null;
        }
        // A value held in a readonly field is a copy that cannot be assigned to, whatever its own fields; what its
        // reference fields point to can change.
        for (var bt = t; bt is not null && bt != typeof(object) && bt != typeof(ValueType); bt = bt.BaseType)
            foreach (var f in bt.GetFields(Instance))
            {
                if (!f.IsInitOnly && !t.IsValueType) return $"a {t.Name}, whose {bt.Name}.{f.Name} is not readonly";
                if (Mutable(f.GetValue(value), seen, depth + 1) is { } r) return $"a {t.Name} holding {r}";
            }
        return null;
    }
}

/// <summary>Types the checker must flag (and two it must not): each a way to hold mutable static state.</summary>
internal static class Fixtures
{
    public static class PublicStaticInt
    {
        public static int X;
        public static void Set(int x) => X = x;
    }
    public static class StaticAutoProperty { public static int Count { get; set; } }
    public static class ThreadStaticField
    {
        [ThreadStatic] private static int t_last;
        public static int Next() => ++t_last;
    }
    public static class ReadOnlyList { public static readonly List<int> Items = [1]; }
    public static class ReadOnlyNonEmptyArray { public static readonly string[] Names = ["a", "b"]; }
    public static class ReadOnlyStringBuilder { public static readonly System.Text.StringBuilder Text = new(); }
    public static class ReadOnlyMutableOptions { public static readonly JsonSerializerOptions Options = new(); }
    public sealed record Settings { public int Value { get; set; } }
    public static class ReadOnlyRecordWithSetter { public static readonly Settings Settings = new(); }

    public static class Immutable
    {
        public const int Answer = 42;
        public static readonly string Name = "x";
        public static readonly int[] None = [];
        public static readonly ImmutableArray<string> Names = ["a", "b"];
        public static readonly KernelTuning Tuning = KernelTuning.Default with { Nc = 64 };
        public static readonly Func<int, int> Twice = x => 2 * x;
        public static readonly (int, string) Pair = (1, "one");
        public static IReadOnlyList<int> Computed => [1, 2];
    }

    public static class Generic<T> where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        public static readonly T Half = T.One / (T.One + T.One);
    }
}
