using System.Numerics;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>The optimizer registry: each kind carries its facts, and a program adds its own kind without editing the library.</summary>
public sealed class OptimizerRegistryTests
{
    /// <summary>A test-only optimizer: p ← p − lr·sign(g).</summary>
    private sealed class SignSgd<T>(IReadOnlyList<Var<T>> parameters, double lr) : Optimizer<T>(parameters, lr)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public override string Name => "signsgd";

        protected override bool Update(int index, int start, int length)
        {
            var p = ParameterSlice(index, start, length);
            var g = GradientSlice(index, start, length);
            T lr = T.CreateChecked(LearningRate);
            bool finite = true;
            for (int i = 0; i < p.Length; i++)
            {
                if (!T.IsFinite(g[i])) finite = false;
                p[i] -= lr * T.CreateChecked(T.Sign(g[i]));
            }
            return finite;
        }

        public override IEnumerable<(string Name, Tensor<T> Tensor)> State() => [];
    }

    private sealed class SignSgdKind : OptimizerKind
    {
        public override string Name => "signsgd";
        public override System.Collections.Immutable.ImmutableArray<string> HyperParameters { get; } = ["learning_rate"];
        public override System.Collections.Immutable.ImmutableArray<string> StateNames { get; } = [];
        public override Optimizer<T> Create<T>(IReadOnlyList<Var<T>> parameters, OptimizerSettings settings) => new SignSgd<T>(parameters, settings.LearningRate);
    }

    private static Var<double>[] Parameters() => Initializers.Mlp<double>([3, 4, 2], "tanh", 0).Parameters().ToArray();

    [Fact]
    public void Every_kind_makes_an_optimizer_of_its_name_whose_state_tensors_are_named_as_it_declares()
    {
        Assert.NotEmpty(OptimizerRegistry.Default.Kinds);
        foreach (var kind in OptimizerRegistry.Default.Kinds)
        {
            var ps = Parameters();
            var optimizer = kind.Create(ps, new OptimizerSettings(0.1));
            Assert.Equal(kind.Name, optimizer.Name);
            Assert.Same(kind, OptimizerRegistry.Default.Get(kind.Name));
            var expected = kind.StateNames.SelectMany(s => Enumerable.Range(0, ps.Length).Select(i => $"{s}.{i}")).Order();
            Assert.Equal(expected, optimizer.State().Select(s => s.Name).Order());
            Assert.Contains("learning_rate", kind.HyperParameters);
        }
    }

    [Fact]
    public void Without_a_weight_decay_a_kind_applies_its_own_default()
    {
        foreach (var kind in OptimizerRegistry.Default.Kinds)
        {
            // one step from the same gradients: no weight decay given ≡ the kind's default given
            double[] Step(double? weightDecay)
            {
                var ps = Parameters();
                foreach (var p in ps) { p.Value.Span.Fill(0.5); p.Grad.Span.Fill(0.25); }
                kind.Create(ps, new OptimizerSettings(0.1, WeightDecay: weightDecay)).Step();
                return ps.SelectMany(p => p.Value.Span.ToArray()).ToArray();
            }
            Assert.Equal(Step(kind.DefaultWeightDecay), Step(null));
            if (kind.DefaultWeightDecay != 0) Assert.NotEqual(Step(0), Step(null));
        }
    }

    [Fact]
    public void An_optimizer_runs_on_the_context_it_is_created_with_and_never_on_none()
    {
        using var context = new Backprop.Kernels.ComputeContext(2);
        // 300×400: 120k weights, so the 2-thread update is split on the context's pool.
        var ps = Initializers.Mlp<float>([300, 400, 7], "relu", 3).Parameters().ToArray();
        foreach (var p in ps) p.Grad.Span.Fill(0.25f);
        foreach (var kind in OptimizerRegistry.Default.Kinds.Append(new SignSgdKind()))
        {
            var optimizer = kind.Create(ps, new OptimizerSettings(0.01), context);
            Assert.Same(context, optimizer.Context);
            long jobs = context.Pool.JobsRun;
            optimizer.Step();
            Assert.Equal(jobs + 1, context.Pool.JobsRun);   // the update ran split on the given context, not the default one
            Assert.Same(Backprop.Kernels.ComputeContext.Default, kind.Create(ps, new OptimizerSettings(0.01), null).Context);
            Assert.Same(Backprop.Kernels.ComputeContext.Default, kind.Create(ps, new OptimizerSettings(0.01)).Context);
        }
        Assert.Same(context, Optimizer<float>.Create("adam", ps, 0.01, context: context).Context);
        Assert.Same(Backprop.Kernels.ComputeContext.Default, Optimizer<float>.Create("adam", ps, 0.01).Context);

        // A null context is refused where it is set, not found later inside a step.
        var sgd = Optimizer<float>.Create("sgd", ps, 0.01, context: context);
        Assert.Throws<ArgumentNullException>(() => sgd.Context = null!);
        Assert.Same(context, sgd.Context);
        sgd.Step();
    }

    [Fact]
    public void An_unknown_name_is_refused_with_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => OptimizerRegistry.Default.Get("lbfgs"));
        foreach (var name in OptimizerRegistry.Default.Names) Assert.Contains(name, e.Message);
        Assert.False(OptimizerRegistry.Default.Contains("lbfgs"));
    }

    [Fact]
    public void With_adds_a_kind_to_a_new_registry_and_leaves_the_default_alone()
    {
        var registry = OptimizerRegistry.Default.With(new SignSgdKind());
        Assert.True(registry.Contains("signsgd"));
        Assert.False(OptimizerRegistry.Default.Contains("signsgd"));
        Assert.Equal([.. OptimizerRegistry.Default.Names, "signsgd"], registry.Names);
        Assert.EndsWith("rmsprop or signsgd", registry.NamesText());
        Assert.Equal(registry.Kinds.Count, registry.With(new SignSgdKind()).Kinds.Count);   // the same name replaces, in place
    }

    [Fact]
    public void A_test_only_optimizer_trains_and_checkpoints_a_run_given_its_registry()
    {
        var registry = OptimizerRegistry.Default.With(new SignSgdKind());
        var job = new TrainingJob
        {
            Data = CliRunner.DataPath("tabular", "iris.csv"),
            Options = new TrainOptions { Optimizer = "signsgd", LearningRate = 0.01, Epochs = 4, BatchSize = 16, Seed = 1 },
        };
        Assert.Throws<InvalidTrainingSettingException>(() => TrainingRun<float>.Create(job));
        using var tmp = new TempDir();
        var run = TrainingRun<float>.Create(job, checkpointPath: tmp.File("ck.safetensors"), optimizers: registry);
        var before = run.Network.Clone();
        var result = run.Run();
        Assert.IsType<SignSgd<float>>(run.Trainer.Optimizer);
        Assert.False(TrainingAssert.SameBits(before, run.Network));
        Assert.True(result.History[^1].TrainLoss < result.History[0].TrainLoss, "sign SGD lowers the training loss");
        Assert.Equal("signsgd", Checkpoint.Load<float>(tmp.File("ck.safetensors")).Optimizer);
    }
}
