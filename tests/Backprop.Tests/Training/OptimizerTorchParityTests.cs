using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>
/// The optimizers against torch.optim (float64): same start, same three gradients, same parameters afterwards.
/// Each test runs a 3-element parameter (below the SIMD width: scalar loop only) and a 37-element one
/// (vector loop plus a scalar tail). The updates are elementwise, so the 3-element result is the first 3 values of
/// the 37-element one.
/// </summary>
public class OptimizerTorchParityTests
{
    // Starting values and gradients; the same formulas are in the Python snippet below.
    private static double P0(int i) => ((i * 37) % 17 - 8) / 10.0;
    private static double G(int step, int i) => ((i * 13 + step * 7) % 11 - 5) / 4.0;

    /*
    Generated with PyTorch 1.13 (/usr/bin/python3):

    import torch
    torch.set_default_dtype(torch.float64)
    def p0(n): return [((i * 37) % 17 - 8) / 10.0 for i in range(n)]
    def grad(n, k): return [((i * 13 + k * 7) % 11 - 5) / 4.0 for i in range(n)]
    configs = {
      "sgd":          lambda p: torch.optim.SGD([p], lr=0.1),
      "sgd_momentum": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9),
      "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True),
      "sgd_wd":       lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01),
      "adam":         lambda p: torch.optim.Adam([p], lr=0.01),
      "adam_l2":      lambda p: torch.optim.Adam([p], lr=0.01, weight_decay=0.1),
      "adamw":        lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1),
      "rmsprop":      lambda p: torch.optim.RMSprop([p], lr=0.01),
      "rmsprop_wd":   lambda p: torch.optim.RMSprop([p], lr=0.01, weight_decay=0.1),
    }
    for name, make in configs.items():
      n = 37
      p = torch.tensor(p0(n), requires_grad=True)
      opt = make(p)
      for k in range(3):
        opt.zero_grad(); p.grad = torch.tensor(grad(n, k)); opt.step()
      print('["%s"] = [%s],' % (name, ", ".join(repr(float(x)) for x in p.detach())))
    */
    private static readonly Dictionary<string, double[]> Torch = new()
    {
        ["sgd"] = [-0.675, -0.525, -0.1, 0.05000000000000002, 0.47500000000000003, 0.6249999999999999, -0.6499999999999999, -0.5, -0.07500000000000001, 0.07500000000000001, 0.5, 0.925, -0.625, -0.19999999999999996, -0.05, 0.375, 0.5249999999999999, -0.75, -0.6000000000000001, -0.17500000000000002, -0.025, 0.4, 0.825, -0.725, -0.3, -0.15, 0.275, 0.425, 0.8500000000000001, -0.7, -0.27499999999999997, -0.125, 0.3, 0.725, -0.8250000000000001, -0.39999999999999997, -0.25],
        ["sgd_momentum"] = [-0.5062500000000001, -0.48674999999999996, 0.055250000000000014, 0.07475000000000002, 0.36925, 0.38874999999999993, -0.5465, -0.527, 0.015000000000000003, 0.03450000000000001, 0.329, 1.09375, -0.58675, -0.04474999999999993, -0.025249999999999995, 0.26925, 0.28874999999999995, -0.6465000000000001, -0.627, -0.085, -0.06550000000000002, 0.22900000000000004, 0.9937499999999999, -0.68675, -0.14474999999999996, -0.12525, 0.16924999999999998, 0.18874999999999997, 0.9535, -0.7269999999999999, -0.18499999999999997, -0.1655, 0.12899999999999998, 0.8937499999999999, -0.7867500000000001, -0.24474999999999994, -0.22524999999999998],
        ["sgd_nesterov"] = [-0.410625, -0.5130750000000001, 0.129725, 0.027275000000000008, 0.447325, 0.344875, -0.51185, -0.6143, 0.028499999999999994, -0.07395, 0.3461, 1.1893750000000003, -0.613075, 0.02972500000000004, -0.07272499999999998, 0.34732499999999994, 0.24487499999999995, -0.6118500000000001, -0.7142999999999999, -0.07150000000000001, -0.17395000000000002, 0.2461, 1.089375, -0.713075, -0.070275, -0.172725, 0.247325, 0.144875, 0.98815, -0.8142999999999999, -0.17149999999999999, -0.27395, 0.14609999999999998, 0.989375, -0.8130750000000001, -0.17027499999999995, -0.272725],
        ["sgd_wd"] = [-0.5021907142, -0.4841323245, 0.056151065199999996, 0.07420945490000003, 0.3672678446, 0.3853262342999999, -0.5428812593, -0.5248228696, 0.01546052009999999, 0.0335189098, 0.3265772995000001, 1.0888409642, -0.5835718044, -0.04328841469999999, -0.025230025000000003, 0.2678283647, 0.28588675439999994, -0.6423207392000001, -0.6242623495, -0.0839789598, -0.06592057010000002, 0.2271378196, 0.9894014842999999, -0.6830112843, -0.14272789460000004, -0.12466950489999999, 0.16838888479999997, 0.18644727449999998, 0.9487109391999999, -0.7237018293999999, -0.1834184397, -0.16536005, 0.1276983397, 0.8899620043999998, -0.7824507642, -0.24216737449999995, -0.2241089848],
        ["adam"] = [-0.7818139370050918, -0.493430945253236, -0.17752731770772337, 0.09229789646066315, 0.38974570984218504, 0.6798624608856632, -0.6871758901729716, -0.39894992125503465, -0.09179181013865484, 0.18516534857292413, 0.48415809478737903, 0.8181860629949083, -0.5934309452532359, -0.27752731770772326, -0.0077021035393368565, 0.289745709842185, 0.5798624608856632, -0.7871758901729717, -0.4989499212550346, -0.19179181013865487, 0.0851653485729241, 0.38415809478737906, 0.7181860629949082, -0.6934309452532359, -0.3775273177077233, -0.10770210353933686, 0.18974570984218503, 0.47986246088566314, 0.8128241098270284, -0.5989499212550347, -0.2917918101386548, -0.014834651427075903, 0.284158094787379, 0.6181860629949081, -0.793430945253236, -0.4775273177077233, -0.20770210353933685],
        ["adam_l2"] = [-0.7804530045750326, -0.4921995181732583, -0.17726886689445104, 0.09204096376194448, 0.38877673218220754, 0.6789005944172749, -0.68554551175163, -0.39817821978009593, -0.08160249315235196, 0.18460903667575485, 0.4832170517548499, 0.8166211748876095, -0.5919480413431233, -0.2771376677247266, -0.007691184502544966, 0.28902000644460796, 0.5790345552921664, -0.7853182273798182, -0.49797689143122364, -0.18140216541064616, 0.08489458382920068, 0.38340490995905446, 0.7168240851466846, -0.6916959457439635, -0.37700893567535765, -0.10742557526981995, 0.18926552401654598, 0.4791704806526059, 0.8108317006560282, -0.5977728391992305, -0.28120452127886497, -0.014818220411174463, 0.28359477221233176, 0.6170243664358913, -0.7914433545438638, -0.4768826438117814, -0.20716224959007817],
        ["adamw"] = [-0.7794397822633748, -0.49195049964890003, -0.17695651796944895, 0.09201324446161896, 0.3885709016275664, 0.6777925805951983, -0.6850988727228357, -0.39776668870204346, -0.0914995514067853, 0.1845854120567454, 0.4826862848696257, 0.8157650161366252, -0.5916507995488999, -0.2766568178694488, -0.0076870554383810415, 0.2888706017275664, 0.5780922806951984, -0.7847991726228358, -0.49746698860204347, -0.19119985130678532, 0.08488511215674535, 0.3829859849696257, 0.7160647162366253, -0.6913510994488998, -0.37635711776944886, -0.10738735533838105, 0.18917030182756644, 0.4783919807951984, 0.8104056257771642, -0.5971672885020434, -0.2909001512067852, -0.014815187743254651, 0.2832856850696257, 0.6163644163366251, -0.7910513993488999, -0.47605741766944887, -0.20708765523838105],
        ["rmsprop"] = [-0.7021976219065881, -0.4801443968802949, -0.03860332444143175, 0.016303058668706627, 0.41651071764870506, 0.6313743649349741, -0.6404254545308657, -0.4112703267593591, -0.06019293171196614, 0.08369115362499603, 0.47106511585077016, 0.897802378093412, -0.5801443968802948, -0.13860332444143175, -0.08369694133129338, 0.31651071764870503, 0.5313743649349741, -0.7404254545308658, -0.511270326759359, -0.16019293171196614, -0.01630884637500396, 0.3710651158507702, 0.7978023780934119, -0.6801443968802949, -0.23860332444143179, -0.18369694133129338, 0.21651071764870505, 0.4313743649349742, 0.8595745454691343, -0.611270326759359, -0.2601929317119661, -0.11630884637500397, 0.2710651158507701, 0.697802378093412, -0.780144396880295, -0.33860332444143176, -0.28369694133129336],
        ["rmsprop_wd"] = [-0.6926562094388804, -0.47313882541327107, -0.038523615610065905, 0.015760348502297433, 0.4101381365498836, 0.6228550606676586, -0.6301438928408495, -0.40721713496542156, 0.0392949599714445, 0.08149941503161075, 0.4640074834702377, 0.8852026849440233, -0.571611859658017, -0.13772872262275615, -0.0831980634214247, 0.3120166959288898, 0.5242395209702037, -0.7285700111719056, -0.5061453758561573, -0.05982318816618234, -0.01691948789752637, 0.36567029122342193, 0.7866816293375958, -0.6700738410566366, -0.23694037711748708, -0.18217093668250622, 0.21389970831651645, 0.42563558770163024, 0.8457575570139789, -0.6050530194180425, -0.15894251846286533, -0.11535444350162277, 0.2673423659916804, 0.6881489828620192, -0.7685254571552389, -0.3361587705824615, -0.2811573251992213],
    };

    private static Optimizer<double> Make(string config, IReadOnlyList<Var<double>> ps) => config switch
    {
        "sgd" => new Sgd<double>(ps, 0.1),
        "sgd_momentum" => new Sgd<double>(ps, 0.1, momentum: 0.9),
        "sgd_nesterov" => new Sgd<double>(ps, 0.1, momentum: 0.9, nesterov: true),
        "sgd_wd" => new Sgd<double>(ps, 0.1, momentum: 0.9, weightDecay: 0.01),
        "adam" => new Adam<double>(ps, 0.01),
        "adam_l2" => new Adam<double>(ps, 0.01, weightDecay: 0.1),
        "adamw" => new Adam<double>(ps, 0.01, weightDecay: 0.1, decoupled: true),
        "rmsprop" => new RmsProp<double>(ps, 0.01),
        "rmsprop_wd" => new RmsProp<double>(ps, 0.01, weightDecay: 0.1),
        _ => throw new ArgumentException(config),
    };

    public static TheoryData<string, int> Cases()
    {
        var d = new TheoryData<string, int>();
        foreach (var c in new[] { "sgd", "sgd_momentum", "sgd_nesterov", "sgd_wd", "adam", "adam_l2", "adamw", "rmsprop", "rmsprop_wd" })
            foreach (int n in new[] { 3, 37 })
                d.Add(c, n);
        return d;
    }

    /// <summary>
    /// Three steps whose gradients come from a tape: loss = Σ g⊙p, so dL/dp = g.
    /// Several parameters of different lengths in one optimizer check the per-parameter state.
    /// </summary>
    private static Var<double>[] RunThreeSteps(string config, params int[] lengths)
    {
        var ps = lengths.Select(n => Var<double>.Parameter(new Tensor<double>(Enumerable.Range(0, n).Select(P0).ToArray(), n))).ToArray();
        var tape = new Tape<double>();
        var gs = lengths.Select(n => tape.Constant(new Tensor<double>(n))).ToArray();
        Var<double>? loss = null;
        for (int j = 0; j < ps.Length; j++)
        {
            var term = Functional.Sum(Functional.Mul(gs[j], ps[j]));
            loss = loss is null ? term : loss + term;
        }
        var opt = Make(config, ps);
        for (int step = 0; step < 3; step++)
        {
            foreach (var g in gs)
                for (int i = 0; i < g.Value.Length; i++) g.Value.Data[i] = G(step, i);
            tape.Forward();
            tape.Backward(loss!);
            opt.Step();
        }
        Assert.Equal(3, opt.StepCount);
        return ps;
    }

    private static void AssertClose(double[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = 1e-13 * Math.Max(1, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol,
                $"{what}[{i}]: expected {expected[i]:R} (torch), got {actual[i]:R}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Three_steps_match_torch_optim(string config, int n)
    {
        var p = RunThreeSteps(config, n)[0];
        AssertClose(Torch[config][..n], p.Value.Data.ToArray(), $"{config}/{n}");
    }

    [Theory]
    [InlineData("sgd_momentum")]
    [InlineData("sgd_nesterov")]
    [InlineData("adam")]
    [InlineData("adamw")]
    [InlineData("rmsprop_wd")]
    public void Parameters_sharing_an_optimizer_keep_separate_state(string config)
    {
        var ps = RunThreeSteps(config, 37, 3, 37);
        AssertClose(Torch[config], ps[0].Value.Data.ToArray(), $"{config}/0");
        AssertClose(Torch[config][..3], ps[1].Value.Data.ToArray(), $"{config}/1");
        AssertClose(Torch[config], ps[2].Value.Data.ToArray(), $"{config}/2");
    }

    [Fact]
    public void Factory_builds_the_named_optimizer()
    {
        var ps = new[] { Var<double>.Parameter(new Tensor<double>(4)) };
        Assert.Equal("sgd", Optimizer<double>.Create("sgd", ps, 0.1).Name);
        Assert.Equal("adam", Optimizer<double>.Create("adam", ps, 0.1).Name);
        Assert.Equal("adamw", Optimizer<double>.Create("adamw", ps, 0.1).Name);
        Assert.Equal("rmsprop", Optimizer<double>.Create("rmsprop", ps, 0.1).Name);
        Assert.Throws<ArgumentException>(() => Optimizer<double>.Create("lbfgs", ps, 0.1));
    }

    /// <summary>AdamW decays by torch's default 0.01 when no weight decay is given, and not at all when 0 is given.</summary>
    [Theory]
    [InlineData(null, 1 - 0.1 * 0.01)]
    [InlineData(0.0, 1.0)]
    [InlineData(0.5, 1 - 0.1 * 0.5)]
    public void AdamW_weight_decay_defaults_to_torch_and_zero_means_none(double? weightDecay, double factor)
    {
        var w = Var<double>.Parameter(Tensor<double>.FromVector([2.0, -4.0]));
        w.GradTarget(out _).Fill(0); // a zero gradient: only the decoupled decay moves the weights
        Optimizer<double>.Create("adamw", [w], 0.1, weightDecay: weightDecay).Step();
        Assert.Equal(2.0 * factor, w.Value.Data[0], 15);
        Assert.Equal(-4.0 * factor, w.Value.Data[1], 15);
    }

    [Fact]
    public void State_tensors_are_named_per_parameter_for_checkpoints()
    {
        var ps = new[] { Var<double>.Parameter(new Tensor<double>(2, 3)), Var<double>.Parameter(new Tensor<double>(3)) };
        Assert.Equal(new[] { "momentum.0", "momentum.1" }, new Sgd<double>(ps, 0.1, 0.9).State().Select(s => s.Item1));
        Assert.Equal(new[] { "m.0", "m.1", "v.0", "v.1" }, new Adam<double>(ps, 0.1).State().Select(s => s.Item1));
        Assert.Equal(new[] { "square_avg.0", "square_avg.1" }, new RmsProp<double>(ps, 0.1).State().Select(s => s.Item1));
        Assert.All(new Adam<double>(ps, 0.1).State(), s => Assert.True(s.Item2.SameShape(ps[int.Parse(s.Item1[2..])].Value)));
    }
}
