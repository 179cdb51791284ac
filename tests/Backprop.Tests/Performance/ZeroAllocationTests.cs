using Backprop.Kernels;
using Backprop.Training;

namespace Backprop.Tests.Performance;

/// <summary>After the first step, a training step (forward, loss, backward, optimizer update) allocates nothing.</summary>
[Collection(GemmCollection.Name)]
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
        int saved = KernelThreads.Count;
        KernelThreads.Count = threads;
        try
        {
            var net = Initializers.Mlp<float>(layers, "relu", 0);
            var step = new CompiledStep<float>(net, batch);
            var opt = Optimizer<float>.Create(optimizer, net.Parameters().ToArray(), 0.01);
            var rng = new Random(3);
            var x = Enumerable.Range(0, batch * layers[0]).Select(_ => (float)rng.NextDouble()).ToArray();
            var y = Enumerable.Range(0, batch).Select(_ => rng.Next(layers[^1])).ToArray();
            for (int i = 0; i < 30; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }

            // Neither the calling thread nor the kernel workers running its jobs may allocate.
            long before = GC.GetAllocatedBytesForCurrentThread();
            long workersBefore = WorkerPool.AllocatedBytesForCurrentThread;
            for (int i = 0; i < 50; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            Assert.Equal(0, WorkerPool.AllocatedBytesForCurrentThread - workersBefore);
            Assert.True(float.IsFinite(step.Loss.Value[0]));
        }
        finally { KernelThreads.Count = saved; }
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("sgd")]
    [InlineData("rmsprop")]
    public void TheParallelOptimizerUpdateEqualsTheSerialOne(string optimizer)
    {
        int saved = KernelThreads.Count;
        try
        {
            float[] Run(int threads)
            {
                KernelThreads.Count = threads;
                var net = Initializers.Mlp<float>([300, 400, 7], "relu", 3);   // 120k weights: split between threads
                var step = new CompiledStep<float>(net, 16);
                var opt = Optimizer<float>.Create(optimizer, net.Parameters().ToArray(), 0.01, weightDecay: 1e-3);
                var rng = new Random(4);
                var x = Enumerable.Range(0, 16 * 300).Select(_ => (float)rng.NextDouble()).ToArray();
                var y = Enumerable.Range(0, 16).Select(_ => rng.Next(7)).ToArray();
                for (int i = 0; i < 5; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }
                return net.Parameters().SelectMany(p => p.Value.Data.ToArray()).ToArray();
            }
            Assert.Equal(Run(1), Run(2));
        }
        finally { KernelThreads.Count = saved; }
    }

    private sealed class AllocatingWork : WorkItem
    {
        public object? Kept;
        public override void Execute(int part, int parts) { if (part == 1) Kept = new byte[4000]; }
    }

    [Fact]
    public void WorkerAllocationsAreChargedToTheThreadThatSubmittedTheJob()
    {
        long before = WorkerPool.AllocatedBytesForCurrentThread;
        var work = new AllocatingWork();
        // the pool runs one job at a time: wait for other tests' kernels to let ours in
        bool ran = false;
        for (int attempt = 0; attempt < 100_000 && !ran; attempt++)
        {
            ran = WorkerPool.Shared.TryRun(work, 2);
            if (!ran) Thread.Yield();
        }
        Assert.True(ran);
        Assert.NotNull(work.Kept);
        Assert.True(WorkerPool.AllocatedBytesForCurrentThread - before >= 4000);
    }
}
