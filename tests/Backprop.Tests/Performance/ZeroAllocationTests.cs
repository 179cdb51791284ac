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

            // The calling thread must never allocate. The shared worker threads also run other tests' kernels (which
            // may grow their packing buffers for a new shape), so at least one of a few rounds must show no growth.
            long bestWorkers = long.MaxValue;
            for (int round = 0; round < 4 && bestWorkers != 0; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                long workersBefore = WorkerPool.Shared.WorkerAllocatedBytes;
                for (int i = 0; i < 20; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }
                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
                bestWorkers = Math.Min(bestWorkers, WorkerPool.Shared.WorkerAllocatedBytes - workersBefore);
            }
            Assert.Equal(0, bestWorkers);
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
                return net.Parameters().SelectMany(p => p.Value.Data).ToArray();
            }
            Assert.Equal(Run(1), Run(2));
        }
        finally { KernelThreads.Count = saved; }
    }
}
