using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Tests.Performance;

/// <summary>After the first step, a training step (forward, loss, backward, optimizer update) allocates nothing.</summary>
public class ZeroAllocationTests
{
    [Theory]
    [InlineData(new[] { 784, 64, 10 }, 32, "sgd", 1)]
    [InlineData(new[] { 784, 64, 10 }, 32, "adam", 2)]
    [InlineData(new[] { 784, 256, 256, 10 }, 128, "sgd", 2)]
    [InlineData(new[] { 2, 2, 2, 1 }, 1, "sgd", 1)]
    [InlineData(new[] { 20, 16, 16, 5 }, 7, "rmsprop", 1)]
    public void ATrainingStepAllocatesZeroBytes(int[] layers, int batch, string optimizer, int threads)
    {
        using var context = new ComputeContext(threads);
        var net = Initializers.Mlp<float>(layers, "relu", 0);
        var step = new TrainingStep<float>(net, batch, context);
        var opt = Optimizer<float>.Create(optimizer, net.Parameters().ToArray(), 0.01, context: context);
        var rng = new Random(3);
        var x = Enumerable.Range(0, batch * layers[0]).Select(_ => (float)rng.NextDouble()).ToArray();
        var y = Enumerable.Range(0, batch).Select(_ => rng.Next(layers[^1])).ToArray();
        for (int i = 0; i < 30; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }

        // Neither the calling thread nor the kernel workers running its jobs may allocate.
        Assert.Equal(0, SteadyState.AllocatedBytes(() => { step.Load(x, y); step.ForwardBackward(); opt.Step(); }, context, 50));
        Assert.True(float.IsFinite(step.Loss.Value[0]));
    }

    [Fact]
    public void TheSteadyStateMeasureStillSeesARoundThatAllocates()
    {
        var sink = new List<byte[]>();
        Assert.True(SteadyState.AllocatedBytes(() => sink.Add(new byte[100]), ComputeContext.Default, 3, warmUpSeconds: 0.2) >= 300);
        Assert.Equal(0, SteadyState.AllocatedBytes(() => { }, ComputeContext.Default, 3, warmUpSeconds: 0.2));
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("sgd")]
    [InlineData("rmsprop")]
    public void TheParallelOptimizerUpdateEqualsTheSerialOne(string optimizer)
    {
        float[] Run(int threads)
        {
            using var context = new ComputeContext(threads);
            var net = Initializers.Mlp<float>([300, 400, 7], "relu", 3);   // 120k weights: split between threads
            var step = new TrainingStep<float>(net, 16, context);
            var opt = Optimizer<float>.Create(optimizer, net.Parameters().ToArray(), 0.01, weightDecay: 1e-3, context: context);
            var rng = new Random(4);
            var x = Enumerable.Range(0, 16 * 300).Select(_ => (float)rng.NextDouble()).ToArray();
            var y = Enumerable.Range(0, 16).Select(_ => rng.Next(7)).ToArray();
            for (int i = 0; i < 5; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }
            return net.Parameters().SelectMany(p => p.Value.Span.ToArray()).ToArray();
        }
        Assert.Equal(Run(1), Run(2));
    }

    private sealed class AllocatingWork : WorkItem
    {
        public object? Kept;
        public override void Execute(int part, int parts) { if (part == 1) Kept = new byte[4000]; }
    }

    [Fact]
    public void WorkerAllocationsAreChargedToTheThreadThatSubmittedTheJob()
    {
        using var context = new ComputeContext(2);
        long before = context.WorkerAllocatedBytesForCurrentThread;
        var work = new AllocatingWork();
        Assert.True(context.Pool.TryRun(work, 2)); // the context's own pool: nothing else can be using it
        Assert.NotNull(work.Kept);
        Assert.True(context.WorkerAllocatedBytesForCurrentThread - before >= 4000);
        // Another thread's account, and another context's, are not charged.
        long otherThread = -1;
        var t = new Thread(() => otherThread = context.WorkerAllocatedBytesForCurrentThread);
        t.Start();
        t.Join();
        Assert.Equal(0, otherThread);
        using var other = new ComputeContext(2);
        Assert.Equal(0, other.WorkerAllocatedBytesForCurrentThread);
    }
}
