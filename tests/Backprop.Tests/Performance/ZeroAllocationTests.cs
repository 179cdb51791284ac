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

            long before = GC.GetAllocatedBytesForCurrentThread();
            long workersBefore = WorkerPool.Shared.WorkerAllocatedBytes;
            for (int i = 0; i < 50; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }
            long after = GC.GetAllocatedBytesForCurrentThread();
            Assert.Equal(0, after - before);
            Assert.Equal(0, WorkerPool.Shared.WorkerAllocatedBytes - workersBefore);
            Assert.True(float.IsFinite(step.Loss.Value[0]));
        }
        finally { KernelThreads.Count = saved; }
    }
}
