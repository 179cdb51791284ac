namespace Backprop.Tests.Autodiff;

public class GradientBufferTests
{
    [Fact]
    public void Every_gradient_is_a_view_of_its_slice_in_parameter_order()
    {
        var rng = new Random(3);
        var w1 = Var<double>.Parameter(Tensor<double>.Random(rng, -1, 1, 4, 3), "W1");
        var b1 = Var<double>.Parameter(Tensor<double>.Random(rng, -1, 1, 4), "b1");
        var w2 = Var<double>.Parameter(Tensor<double>.Random(rng, -1, 1, 2, 4), "W2");
        var buffer = new GradientBuffer<double>([w1, b1, w2]);
        Assert.Equal(12 + 4 + 8, buffer.Length);
        Assert.Equal([0, 12, 16], new[] { buffer.OffsetOf(0), buffer.OffsetOf(1), buffer.OffsetOf(2) });

        var tape = new Tape<double>();
        var x = tape.Leaf(Tensor<double>.Random(rng, -1, 1, 5, 3), requiresGrad: false);
        var loss = Functional.Mean(Functional.Linear(Functional.Tanh(Functional.Linear(x, w1, b1)), w2));
        tape.Backward(loss);

        // The same tape on unbound copies of the parameters gives the reference gradients.
        var copies = new[] { w1, b1, w2 }.Select(p => Var<double>.Parameter(p.Value.Clone())).ToArray();
        var tape2 = new Tape<double>();
        var x2 = tape2.Leaf(x.Value.Clone(), requiresGrad: false);
        var loss2 = Functional.Mean(Functional.Linear(Functional.Tanh(Functional.Linear(x2, copies[0], copies[1])), copies[2]));
        tape2.Backward(loss2);

        var flat = buffer.Complete().ToArray();
        var expected = copies.SelectMany(p => p.Grad.Data.ToArray()).ToArray();
        Assert.Equal(expected, flat);
        Assert.True(w1.Grad.IsView && b1.Grad.IsView && w2.Grad.IsView);

        // Writes through the buffer are the parameters' gradients (what an all-reduce does).
        buffer.Complete()[13] = 42;
        Assert.Equal(42, b1.Grad[1]);
    }

    [Fact]
    public void Complete_zeroes_the_slice_of_a_parameter_the_last_pass_did_not_reach()
    {
        var used = Var<float>.Parameter(Tensor<float>.Full(2f, 3), "used");
        var unused = Var<float>.Parameter(Tensor<float>.Full(1f, 2), "unused");
        var buffer = new GradientBuffer<float>([used, unused]);
        // One tape, two objectives: the first reaches only `unused` and leaves 2s in its slice; the second reaches
        // only `used`, so `unused`'s slice then holds stale values that Complete must not hand out.
        var tape = new Tape<float>();
        var lossUnused = Functional.Sum(Functional.Mul(Functional.Mul(unused, tape.Constant(Tensor<float>.Ones(2))), unused));
        var lossUsed = Functional.Sum(Functional.Mul(Functional.Mul(used, tape.Constant(Tensor<float>.Ones(3))), used));
        tape.Backward(lossUnused);
        Assert.Equal([2f, 2f], unused.Grad.Data.ToArray());
        tape.Backward(lossUsed);
        Assert.False(unused.HasGrad);
        Assert.Equal([4f, 4f, 4f, 0f, 0f], buffer.Complete().ToArray());
    }

    [Fact]
    public void A_parameter_listed_twice_is_refused()
    {
        var p = Var<double>.Parameter(new Tensor<double>(2));
        Assert.Throws<ArgumentException>(() => new GradientBuffer<double>([p, p]));
    }

    [Fact]
    public void A_model_keeps_its_gradients_in_one_buffer_that_the_training_step_fills()
    {
        var net = Backprop.Training.Initializers.Mlp<float>([6, 5, 3], "tanh", 2);
        var step = new Backprop.Training.TrainingStep<float>(net, 4);
        var rng = new Random(1);
        step.Load([.. Enumerable.Range(0, 24).Select(_ => (float)rng.NextDouble())], [0, 2, 1, 2]);
        step.ForwardBackward();
        var parameters = net.Parameters().ToArray();
        Assert.Equal(parameters.Sum(p => p.Value.Length), net.Gradients.Length);
        Assert.All(parameters, p => Assert.True(p.Grad.IsView));
        Assert.Equal(parameters.SelectMany(p => p.Grad.Data.ToArray()), net.Gradients.Complete().ToArray());
        Assert.Contains(net.Gradients.Complete().ToArray(), g => g != 0);
    }

    [Fact]
    public void Training_runs_in_training_mode_and_evaluation_and_prediction_in_evaluation_mode()
    {
        var data = new Backprop.Data.LabeledData([.. Enumerable.Range(0, 40).Select(i => (float)Math.Sin(i))], [.. Enumerable.Range(0, 10).Select(i => i % 2)], 4);
        var net = Backprop.Training.Initializers.Mlp<float>([4, 3, 2], "relu", 0);
        var trainer = new Backprop.Training.Trainer<float>(net, new Backprop.Training.TrainOptions { BatchSize = 5, Epochs = 1 });
        var loader = new Backprop.Data.BatchLoader(data, 5, 0);
        bool? modeDuringTraining = null;
        trainer.TrainEpoch(loader, 1, trainer.Schedule(loader.BatchesPerEpoch), _ => modeDuringTraining = net.Layers.All(l => l.Training));
        Assert.True(modeDuringTraining);
        trainer.Evaluate(data);
        Assert.All(net.Layers, l => Assert.False(l.Training));
        net.SetTraining(true);
        net.Predict(data.FeaturesTensor());
        Assert.All(net.Layers, l => Assert.True(l.Training));   // predicting reads the network: its modes are the caller's
    }

    private static Backprop.Nn.Sequential<float> WithModes(int seed)
    {
        var net = new Backprop.Nn.Sequential<float>(
        [
            new Backprop.Nn.DenseLayer<float>(4, 8, Activations.Create<float>("relu")),
            new Backprop.Nn.BatchNormLayer<float>(8, Activations.Create<float>("relu")),
            new Backprop.Nn.DropoutLayer<float>(8, 0.5),
            new Backprop.Nn.DenseLayer<float>(8, 2, new Identity<float>()),
        ]);
        var rng = new Random(seed);
        foreach (var p in net.Parameters())
            for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] = (float)(rng.NextDouble() - 0.5);
        return net;
    }

    [Fact]
    public void Predicting_from_a_training_callback_leaves_the_training_as_it_is()
    {
        // batch norm and dropout train in training mode: a prediction between two steps once left them in evaluation
        // mode (running statistics, no dropout) for the rest of the epoch
        var data = new Backprop.Data.LabeledData([.. Enumerable.Range(0, 160).Select(i => (float)Math.Sin(i * 0.7))], [.. Enumerable.Range(0, 40).Select(i => i % 2)], 4);
        var x = data.FeaturesTensor();
        float[] Train(bool predict, out Tensor<float>? predicted)
        {
            var net = WithModes(3);
            var trainer = new Backprop.Training.Trainer<float>(net, new Backprop.Training.TrainOptions { BatchSize = 5, Epochs = 1, Seed = 4 });
            var loader = new Backprop.Data.BatchLoader(data, 5, 0);
            Tensor<float>? seen = null;
            trainer.TrainEpoch(loader, 1, trainer.Schedule(loader.BatchesPerEpoch), done =>
            {
                if (!predict || done != 10) return;
                var evaluation = net.Clone();
                evaluation.SetTraining(false);
                var expected = evaluation.Forward(new Tape<float>().Leaf(x, requiresGrad: false, "x")).Output.Value;
                seen = net.Predict(x);
                Assert.Equal(expected.Span.ToArray(), seen.Span.ToArray());   // the evaluation-mode outputs
                Assert.All(net.Layers, l => Assert.True(l.Training));
            });
            predicted = seen;
            return [.. net.Parameters().SelectMany(p => p.Value.Span.ToArray()), .. net.Layers.SelectMany(l => l.Buffers).SelectMany(b => b.Value.Span.ToArray())];
        }
        var plain = Train(predict: false, out _);
        var withPredictions = Train(predict: true, out var predicted);
        Assert.NotNull(predicted);
        Assert.Equal(plain, withPredictions);
    }
}
