using System.Numerics;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Core;
using Backprop.Autodiff;
using Backprop.Ops;

namespace Backprop.Explain;

/// <summary>
/// Generates a backpropagation derivation by walking a problem's recorded graph from the objective back to the
/// requested leaf. Each op contributes its own formula text (<see cref="Op{T}.Formula"/>, <see cref="Op{T}.GradFormulas"/>,
/// the activation's symbol and derivative), so the derivation follows whatever the tape holds rather than a template.
/// Every number is recomputed in float64 by the rule that is printed and compared with the tape's own gradient.
/// </summary>
public static class Explainer
{
    /// <summary>
    /// Runs the problem's forward and backward passes and derives the gradient of its objective with respect to
    /// <paramref name="wrt"/>: forward equations, backward steps, the Jacobian in matrix-product form, and optionally a
    /// finite-difference check.
    /// </summary>
    /// <param name="problem">The problem; its forward and backward passes run (a training batch norm moves its running statistics).</param>
    /// <param name="wrt">The value to differentiate with respect to: "layers.I.NAME", "layers.I.output" or "input"; null: "layers.0.weight".</param>
    /// <param name="notation">How the backward steps are written.</param>
    /// <param name="finiteDifference">Whether to check the result by central differences (<see cref="CheckFiniteDifferences{T}"/>).</param>
    /// <param name="finiteDifferenceSample">Check at most this many elements of the gradient by finite differences (an even
    /// sample; null: all of them). A large model's weight has too many for two forward passes each.</param>
    /// <exception cref="UnknownValueException"><paramref name="wrt"/> names no value of the problem.</exception>
    public static Derivation Explain<T>(Problem<T> problem, string? wrt = null, Notation notation = Notation.Columns, bool finiteDifference = true,
        int? finiteDifferenceSample = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        wrt ??= "layers.0.weight";
        var target = problem.Resolve(wrt);
        problem.Forward(); // from the problem's buffers: a training batch norm moves its running statistics on every pass
        problem.Backward();

        var walk = new Walk<T>(problem, target, notation);
        var forward = walk.ForwardSteps();
        var backward = walk.BackwardSteps();
        var jacobian = walk.JacobianSteps();
        var fd = finiteDifference ? CheckFiniteDifferences(problem, wrt, backward[^1].Value, finiteDifferenceSample) : null;
        var symbolLatex = problem.Network.Layers.Select(l => l.Activation).Where(a => a.LatexSymbol is not null)
            .Select(a => (a.Symbol, a.LatexSymbol!)).Distinct().ToList();
        return new Derivation(problem.Spec.Name, DTypeName<T>(), wrt, walk.ObjectiveText, notation, walk.Notes(), forward, backward, jacobian, fd)
        {
            SymbolLatex = symbolLatex,
        };
    }

    /// <summary>The element type's name in derivations and reports: "float32" for float, otherwise "float64".</summary>
    public static string DTypeName<T>() => typeof(T) == typeof(float) ? "float32" : "float64";

    /// <summary>
    /// Central differences of the objective in float64 on a float64 copy of the problem (its numbers rounded to
    /// <typeparamref name="T"/> first), compared with the derivation's gradient at <typeparamref name="T"/>'s tolerances.
    /// </summary>
    public static FiniteDifferenceCheck CheckFiniteDifferences<T>(Problem<T> problem, string wrt, Tensor<double> gradient, int? maxElements = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // the network cast to float64 holds exactly T's numbers: the same function, differentiated in float64
        var reference = new Problem<double>(problem.Spec.RoundedTo<T>(), problem.Network.Cast<double>(), problem.Catalog);
        var leaf = reference.Resolve(wrt);
        var (atol, rtol) = GradientCheck.TolerancesFor<T>();
        var report = GradientCheck.Compare(reference.Tape, reference.Objective, [(wrt, leaf)], [gradient.Data.ToArray()], DTypeName<T>(), atol, rtol, maxElements);
        var e = report.Entries[0];
        int total = gradient.Length;
        return new FiniteDifferenceCheck(report.DType, report.Step, e.MaxAbsError, e.MaxRelError, atol, rtol, e.Passed)
        {
            Checked = maxElements is int m && m > 0 && m < total ? m : total, Total = total,
        };
    }

    /// <summary>The walk over one problem's graph; the names of this network's quantities in either notation.</summary>
    private sealed class Walk<T>(Problem<T> problem, Var<T> target, Notation notation) where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly Dictionary<Var<T>, int> _zLayer = Index(problem.Trace.Z);
        private readonly Dictionary<Var<T>, int> _hLayer = Index(problem.Trace.H);
        // every op node a layer recorded (its LayerTrace's node range), with the layer's 1-based number
        private readonly Dictionary<Var<T>, int> _layerOfNode = NodeLayers(problem);

        private static Dictionary<Var<T>, int> NodeLayers(Problem<T> problem)
        {
            var d = new Dictionary<Var<T>, int>(ReferenceEqualityComparer.Instance);
            var nodes = problem.Tape.Nodes;
            foreach (var l in problem.Trace.Layers)
                for (int k = l.FirstNode; k < l.FirstNode + l.NodeCount && k < nodes.Count; k++) d[nodes[k]] = l.Index + 1;
            return d;
        }

        /// <summary>The name of a value a layer computed: z_l for its pre-activation, else the layer's own name for it (or the op's) with the layer subscript.</summary>
        private string ValueName(Var<T> node, int l) =>
            _zLayer.ContainsKey(node) ? PreActivationSymbol(l) : $"{node.Name ?? node.Op?.Name ?? "v"}{Subscript(l)}";
        private int LayerCount => problem.Network.Layers.Count;
        private bool Rows => notation == Notation.Rows;

        private static Dictionary<Var<T>, int> Index(IReadOnlyList<Var<T>> vars)
        {
            var d = new Dictionary<Var<T>, int>(ReferenceEqualityComparer.Instance);
            for (int i = 0; i < vars.Count; i++) d[vars[i]] = i + 1; // 1-based layer numbers, as in the math
            return d;
        }

        private static string Subscript(int n) => Float64Math.Sub(n);
        // columns: h₀ is the input x; rows: the input of layer l is y_l, so y₁ = x
        private string InputOf(int l) => Rows ? $"y{Subscript(l)}" : l == 1 ? "x" : $"h{Subscript(l - 1)}";
        private string WeightSymbol(int l) => Rows ? $"A{Subscript(l)}" : $"W{Subscript(l)}";
        private static string BiasSymbol(int l) => $"b{Subscript(l)}";
        private static string PreActivationSymbol(int l) => $"z{Subscript(l)}";
        private Activation<T> Act(int l) => problem.Network.Layers[l - 1].Activation;
        private bool HasBias(int l) => problem.Network.Layers[l - 1].MainBias() is not null;
        private static Tensor<double> ToFloat64(Tensor<T> t) => Float64Math.ToDouble(t);
        private Tensor<double> InputValue(int l) => ToFloat64(l == 1 ? problem.Input.Value : problem.Trace.H[l - 2].Value);

        public string ObjectiveText => problem.Loss is null
            ? "L = Σ ŷ   (loss none: the sum of all outputs)"
            : Formulas.Substitute(problem.Loss.Op!.Formula, new Dictionary<string, string> { ["z"] = PreActivationSymbol(LayerCount) });

        public IReadOnlyList<string> Notes()
        {
            var notes = new List<string>
            {
                "Layer subscripts are 1-based: layers.0 in the problem file is layer 1 here (layers.0.weight ↔ W₁).",
                Rows
                    ? "Row vectors, one row per sample: y₁ = x is the input of layer 1, y_{l+1} = Subscript(A_l y_l + b_l) with A_l = W_l; ŷ = y_{L+1}."
                    : "Row vectors, one row per sample (x is batch × in, W is out × in as nn.Linear stores it); h₀ = x, ŷ = h_L; δ_l = ∂L/∂z_l.",
            };
            if (problem.Loss?.Op is LossOp<T> { Reduction: Reduction.Mean } && problem.Spec.BatchSize > 1)
                notes.Add("The 1/N of the mean reduction is already inside δ_L; later steps only sum over the batch.");
            return notes;
        }

        private string ShapeOf(Tensor<double> t) => t.ShapeString;

        // ---------------------------------------------------------------- forward

        public List<DerivationStep> ForwardSteps()
        {
            var steps = new List<DerivationStep>
            {
                Step(Rows ? "y₁" : "x", Rows ? "y₁ = x" : "x = h₀", ToFloat64(problem.Input.Value).ShapeString, ToFloat64(problem.Input.Value)),
            };
            foreach (var node in problem.Tape.Nodes)
            {
                switch (node.Op)
                {
                    case LinearOp<T> lin:
                    {
                        int l = _zLayer[node];
                        var map = new Dictionary<string, string> { ["z"] = PreActivationSymbol(l), ["x"] = InputOf(l), ["W"] = WeightSymbol(l), ["b"] = BiasSymbol(l) };
                        var w = node.Inputs[1].Value; // the Linear op's weight operand
                        string shape = $"{node.Inputs[0].ShapeString}·{w.ShapeString}ᵀ{(lin.HasBias ? $" + {node.Inputs[2].ShapeString}" : "")} → {node.ShapeString}";
                        steps.Add(Step(PreActivationSymbol(l), Formulas.Substitute(lin.Formula, map), shape, ToFloat64(node.Value), [lin.Formula]));
                        if (Act(l).IsIdentity)
                        {
                            string h = Rows ? $"y{Subscript(l + 1)}" : $"h{Subscript(l)}";
                            steps.Add(Step(h, $"{h} = id({PreActivationSymbol(l)}) = {PreActivationSymbol(l)}", node.ShapeString, ToFloat64(node.Value)));
                        }
                        break;
                    }
                    case ActivationOp<T> act:
                    {
                        int l = _hLayer[node];
                        string h = Rows ? $"y{Subscript(l + 1)}" : $"h{Subscript(l)}";
                        var map = new Dictionary<string, string> { ["h"] = h, ["z"] = PreActivationSymbol(l) };
                        steps.Add(Step(h, Formulas.Substitute(act.Formula, map), node.ShapeString, ToFloat64(node.Value), [act.Formula, act.Activation.Formula]));
                        break;
                    }
                    case LossOp<T> loss:
                        steps.Add(Step("L", ObjectiveText, "[] (a scalar)", ToFloat64(node.Value), [loss.Formula]));
                        break;
                    case { } op when _layerOfNode.TryGetValue(node, out int l):
                    {
                        // another layer kind's op: its own formula with this network's names
                        var map = OperandNames(node, l);
                        string name = ValueName(node, l);
                        map["Y"] = name;
                        map["y"] = name;
                        string shape = $"{string.Join(", ", node.Inputs.Select(v => v.ShapeString))} → {node.ShapeString}";
                        steps.Add(Step(name, Formulas.Substitute(op.Formula, map), shape, ToFloat64(node.Value), [op.Formula]));
                        if (_zLayer.ContainsKey(node) && Act(l).IsIdentity)
                        {
                            string h = Rows ? $"y{Subscript(l + 1)}" : $"h{Subscript(l)}";
                            steps.Add(Step(h, $"{h} = id({PreActivationSymbol(l)}) = {PreActivationSymbol(l)}", node.ShapeString, ToFloat64(node.Value)));
                        }
                        break;
                    }
                }
            }
            if (problem.Loss is null)
            {
                double sum = problem.Objective();
                steps.Add(Step("L", ObjectiveText, "[] (a scalar)", new Tensor<double>([sum])));
            }
            return steps;
        }

        private static DerivationStep Step(string name, string formula, string shape, Tensor<double> value,
            IReadOnlyList<string>? rules = null, IReadOnlyList<Factor>? factors = null, string? note = null, double? deviation = null) =>
            new(name, formula, shape, value, factors ?? [], rules ?? [], note, deviation);

        // ---------------------------------------------------------------- backward

        private List<Var<T>> PathFromRoot(Var<T> root)
        {
            var path = new List<Var<T>>();
            var visited = new HashSet<Var<T>>(ReferenceEqualityComparer.Instance);
            bool Dfs(Var<T> n)
            {
                path.Add(n);
                if (ReferenceEquals(n, target)) return true;
                if (visited.Add(n))
                    foreach (var input in n.Inputs)
                        if (input.RequiresGrad && Dfs(input)) return true;
                path.RemoveAt(path.Count - 1);
                return false;
            }
            if (!Dfs(root)) throw new ArgumentException("the objective does not depend on the requested value");
            return path;
        }

        // the state carried down the path: the gradient of the current node, its expression and pending factors
        private Tensor<double> _g = null!;
        private string _expr = "";
        private readonly List<Factor> _factors = [];
        private readonly List<string> _rules = [];
        private readonly List<DerivationStep> _steps = [];

        private Var<T>? _lastCounterpart;
        // the largest |value| of the last step: a gradient that cancels to ~0 (a bias before a training batch norm) is
        // compared on the scale of what it was summed from, not on the scale of its own rounding noise
        private double _upstreamScale;
        private const double CancellationFloor = 1e-6;

        private void Emit(string name, string formula, string shape, Tensor<double> value, Var<T>? tapeCounterpart, string? note = null, IEnumerable<Factor>? extraFactors = null)
        {
            _lastCounterpart = tapeCounterpart;
            double? deviation = tapeCounterpart is null ? null
                : Float64Math.RelativeDeviation(value, ToFloat64(tapeCounterpart.Grad), CancellationFloor * _upstreamScale);
            _upstreamScale = Math.Max(Float64Math.MaxAbs(value), CancellationFloor * _upstreamScale);
            var factors = _factors.Concat(extraFactors ?? []).ToList();
            _steps.Add(Step(name, formula, shape, value, _rules.ToList(), factors, note, deviation));
            _factors.Clear();
            _rules.Clear();
        }

        public List<DerivationStep> BackwardSteps()
        {
            int L = LayerCount;
            var root = problem.Loss ?? problem.Output;
            var path = PathFromRoot(root);
            var output = problem.Output;
            string yHat = Rows ? $"dy{Subscript(L + 1)}" : "∂L/∂ŷ";
            int k;
            if (problem.Loss is { Op: LossOp<T> lossOp } lossNode)
            {
                var (grad, definition) = LossGradient(lossOp, lossNode);
                _g = grad;
                _upstreamScale = Float64Math.MaxAbs(grad);
                _rules.Add(lossOp.GradFormulas[0]);
                if (Rows)
                {
                    Emit(yHat, $"{yHat} = ∂L/∂y{Subscript(L + 1)} = {definition}", grad.ShapeString, grad, output);
                    _expr = yHat;
                }
                else
                {
                    _factors.Add(new Factor("∂L/∂ŷ", definition, grad));
                    _expr = definition;
                }
                k = 1;
            }
            else
            {
                _g = Tensor<double>.Ones(output.Value.ShapeArray);
                _upstreamScale = 1;
                const string seed = "1   (the seed of ones: ∂(Σ ŷ)/∂ŷ = 1)";
                if (Rows)
                {
                    Emit(yHat, $"{yHat} = 1", _g.ShapeString, _g, output, "the seed of ones: L = Σ ŷ");
                    _expr = yHat;
                }
                else
                {
                    _factors.Add(new Factor("∂L/∂ŷ", seed, _g));
                    _expr = "1";
                }
                k = 0;
            }
            // an identity output layer records no activation: the output is z_L itself, so δ_L comes first
            if (_zLayer.TryGetValue(path[k], out int outputLayer)) ArriveAtZ(outputLayer, path[k], viaActivation: false);
            for (; k < path.Count - 1; k++)
            {
                var node = path[k];
                var child = path[k + 1];
                bool viaActivation = false;
                switch (node.Op)
                {
                    case ActivationOp<T> act:
                        ThroughActivation(act, node, child);
                        viaActivation = true;
                        break;
                    case LinearOp<T> lin:
                        ThroughLinear(lin, node, child);
                        break;
                    case IReferenceBackward<T> reference when _layerOfNode.ContainsKey(node):
                        ThroughReference(reference, node, child);
                        break;
                    case { } op when _layerOfNode.ContainsKey(node):
                        ThroughLayerOp(op, node, child);
                        break;
                    default:
                        throw new NotSupportedException($"explain: the op '{node.Op?.Name}' is not one explain can describe (only layers and losses)");
                }
                if (_zLayer.TryGetValue(child, out int l)) ArriveAtZ(l, child, viaActivation);
            }
            // --wrt layers.I.output: the walk ends at a layer's output h, whose gradient is still a pending expression
            if (!ReferenceEquals(_lastCounterpart, target) && _hLayer.TryGetValue(target, out int hl))
            {
                string name = Rows ? $"dy{Subscript(hl + 1)}" : hl == L ? "∂L/∂ŷ" : $"∂L/∂h{Subscript(hl)}";
                Emit(name, $"{name} = {_expr}", _g.ShapeString, _g, target, hl == L ? "the network's output ŷ" : $"the output of layer {hl}");
            }
            return _steps;
        }

        /// <summary>∂L/∂(the loss's first input) by the loss op's own rule, recomputed in float64; the definition from its GradFormulas.</summary>
        private (Tensor<double> grad, string definition) LossGradient(LossOp<T> op, Var<T> node)
        {
            var inputs = node.InputArray;
            var g = op.ReferenceGradient(inputs);
            // the op's rule with dL = 1 (L is the root) and the output layer's names
            string rule = Formulas.RightHandSide(op.GradFormulas[0]).Replace("·dL", "", StringComparison.Ordinal);
            string definition = Formulas.Substitute(rule, new Dictionary<string, string> { ["z"] = PreActivationSymbol(LayerCount) });
            if (op.Reduction == Reduction.Mean)
                definition += $"   (N = {op.Count(inputs)}: {op.CountMeaning})";
            return (g, definition);
        }

        private void ThroughActivation(ActivationOp<T> act, Var<T> node, Var<T> child)
        {
            int l = _zLayer[child];
            var a = act.Activation;
            var z = ToFloat64(child.Value);
            var h = ToFloat64(node.Value);
            string zName = Rows ? $"{WeightSymbol(l)}{InputOf(l)}{(HasBias(l) ? $" + {BiasSymbol(l)}" : "")}" : PreActivationSymbol(l);
            _rules.Add(act.GradFormulas[0]);
            if (a.IsElementwise)
            {
                var fPrime = new Tensor<double>(z.ShapeArray);
                var zt = child.Value; var ht = node.Value;
                var d = new T[zt.Length];
                a.Derivative(zt.Data, ht.Data, d);
                for (int i = 0; i < d.Length; i++) fPrime.Data[i] = double.CreateTruncating(d[i]);
                string symbol = $"{a.Symbol}′({zName})";
                _factors.Add(new Factor(Rows ? $"{a.Symbol}′({PreActivationSymbol(l)})" : symbol, a.DerivativeFormula, fPrime));
                _g = Float64Math.Hadamard(_g, fPrime);
                _expr = Rows ? $"{_expr}·diag({symbol})" : $"{Formulas.Paren(_expr)} ⊙ {symbol}";
            }
            else
            {
                // softmax couples a row: its Jacobian-vector product replaces the element-wise ⊙ f′
                _factors.Add(new Factor($"s = softmax({PreActivationSymbol(l)})", a.DerivativeFormula, h));
                _g = Float64Math.SoftmaxJvp(h, _g);
                string g = Formulas.Paren(_expr);
                _expr = Rows ? $"{_expr}·(diag(s) − sᵀs)" : $"s ⊙ ({g} − Σ_row({g} ⊙ s))";
            }
        }

        /// <summary>The names of a layer op's operands: the layer's input, its parameters and buffers (name and layer subscript), its other values, else the value's own name.</summary>
        private Dictionary<string, string> OperandNames(Var<T> node, int l)
        {
            var layer = problem.Network.Layers[l - 1];
            var map = new Dictionary<string, string>();
            // the op's own symbols (x̂, μ, σ̂ …) carry the layer's subscript: σ² of layer 2 is σ₂²
            if (node.Op is IReferenceBackward<T> reference)
                foreach (var symbol in reference.LocalSymbols) map[symbol] = LocalSymbol(symbol, l);
            var names = node.Op!.InputNames;
            for (int i = 0; i < node.Inputs.Count && i < names.Count; i++)
            {
                var v = node.Inputs[i];
                // a parameter the op names by its own symbol (γ, β) keeps it; others are named as the layer saves them
                map[names[i]] = ReferenceEquals(v, problem.Trace.Layers[l - 1].Input) ? InputOf(l)
                    : layer.Parameters.FirstOrDefault(p => ReferenceEquals(p.Value, v)) is { } p ? $"{(v.Name == names[i] ? names[i] : p.Name)}{Subscript(l)}"
                    : layer.Buffers.FirstOrDefault(b => ReferenceEquals(b.Value, v.Value)) is { } b ? $"{b.Name}{Subscript(l)}"
                    : _layerOfNode.ContainsKey(v) ? ValueName(v, l)
                    : v.Name is { } n ? $"{n}{Subscript(l)}" : names[i];
            }
            return map;
        }

        private static string LocalSymbol(string symbol, int l)
        {
            int square = symbol.IndexOf('²');
            return square < 0 ? symbol + Subscript(l) : symbol[..square] + Subscript(l) + symbol[square..];
        }

        /// <summary>
        /// The backward step through an op that recomputes its rule in float64 (<see cref="IReferenceBackward{T}"/>): the
        /// op's rule with this network's names, the values the rule names (x̂, σ̂, dx̂, the mask) as factors, and the
        /// gradient recomputed from explain's own float64 gradient of the op's output, compared with the tape's.
        /// </summary>
        private void ThroughReference(IReferenceBackward<T> reference, Var<T> node, Var<T> child)
        {
            var op = node.Op!;
            int l = _layerOfNode[node];
            int which = -1;
            for (int i = 0; i < node.Inputs.Count; i++) if (ReferenceEquals(node.Inputs[i], child)) which = i;
            string rule = op.GradFormulas[Math.Min(which, op.GradFormulas.Count - 1)];
            _rules.Add(rule);
            var map = OperandNames(node, l);
            map["dy"] = Formulas.Paren(_expr);
            map["y"] = ValueName(node, l);
            var r = reference.ReferenceBackward(node.InputArray, _g, which);
            string rhs = Formulas.Substitute(Formulas.RightHandSide(rule), map);
            string operand = map.GetValueOrDefault(op.InputNames[Math.Min(which, op.InputNames.Count - 1)], child.Name ?? "?");
            string name = ReferenceEquals(child, problem.Input) ? "∂L/∂x" : $"∂L/∂{operand}";
            var factors = r.Values.Select(v => new Factor(Formulas.Substitute(v.Symbol, map), Formulas.Substitute(v.Definition, map), v.Value));
            string shape = $"{node.ShapeString} → {r.Gradient.ShapeString}";
            _g = r.Gradient;
            Emit(name, $"{name} = {rhs}", shape, _g, child, r.Note is null ? null : Formulas.Substitute(r.Note, map), factors);
            _expr = name;
        }

        /// <summary>
        /// The backward step through an op of a layer kind explain has no float64 rule for: the op's own rule with this
        /// network's names and shapes, and the tape's gradient as the numbers (the finite-difference check still tests it).
        /// </summary>
        private void ThroughLayerOp(Op<T> op, Var<T> node, Var<T> child)
        {
            int l = _layerOfNode[node];
            int which = -1;
            for (int i = 0; i < node.Inputs.Count; i++) if (ReferenceEquals(node.Inputs[i], child)) which = i;
            string rule = op.GradFormulas[Math.Min(which, op.GradFormulas.Count - 1)];
            _rules.Add(rule);
            var map = OperandNames(node, l);
            map["dY"] = Formulas.Paren(_expr);
            map["Y"] = ValueName(node, l);
            string rhs = Formulas.Substitute(Formulas.RightHandSide(rule), map);
            _g = ToFloat64(child.Grad);
            string operand = map.GetValueOrDefault(op.InputNames[Math.Min(which, op.InputNames.Count - 1)], child.Name ?? "?");
            string name = ReferenceEquals(child, problem.Input) ? "∂L/∂x" : $"∂L/∂{operand}";
            Emit(name, $"{name} = {rhs}", $"{node.ShapeString} → {_g.ShapeString}", _g, null,
                $"the numbers are the tape's: explain recomputes only dense layers in float64 (layer {l} is {problem.Network.Layers[l - 1].Kind})");
            _expr = name;
        }

        private void ArriveAtZ(int l, Var<T> z, bool viaActivation)
        {
            if (!viaActivation)
            {
                // identity layers record no activation op (h = z); show id′ so every layer reads the same
                var ones = Tensor<double>.Ones(_g.ShapeArray);
                string zName = Rows ? $"{WeightSymbol(l)}{InputOf(l)}{(HasBias(l) ? $" + {BiasSymbol(l)}" : "")}" : PreActivationSymbol(l);
                _factors.Add(new Factor($"id′({PreActivationSymbol(l)})", Act(l).DerivativeFormula, ones));
                _expr = Rows ? $"{_expr}·diag(id′({zName}))" : $"{Formulas.Paren(_expr)} ⊙ id′({PreActivationSymbol(l)})";
            }
            string name = Rows ? $"db{Subscript(l)}" : $"δ{Subscript(l)}";
            Emit(name, $"{name} = ∂L/∂{PreActivationSymbol(l)} = {_expr}", _g.ShapeString, _g, z);
            _expr = name;
        }

        private void ThroughLinear(LinearOp<T> lin, Var<T> node, Var<T> child)
        {
            int l = _zLayer[node];
            int which = -1;
            for (int i = 0; i < node.Inputs.Count; i++) if (ReferenceEquals(node.Inputs[i], child)) which = i;
            string rule = lin.GradFormulas[which];
            _rules.Add(rule);
            var delta = _g;
            string deltaName = _expr;
            var weight = ToFloat64(node.Inputs[1].Value); // the Linear op's weight operand
            var x = InputValue(l);
            // the op's rule with this layer's names: dz → δ_l, W → W_l, x → h_{l−1}
            var names = new Dictionary<string, string> { ["dz"] = deltaName, ["W"] = WeightSymbol(l), ["x"] = InputOf(l), ["b"] = BiasSymbol(l) };
            string rhs = Formulas.Substitute(Formulas.RightHandSide(rule), names);
            switch (which)
            {
                case 0:
                {
                    _g = Float64Math.MatMul(delta, weight);
                    bool isInput = ReferenceEquals(child, problem.Input);
                    string shape = $"{delta.ShapeString}·{weight.ShapeString} → {_g.ShapeString}";
                    if (Rows)
                    {
                        string dy = $"dy{Subscript(l)}";
                        Emit(dy, $"{dy} = {rhs}", shape, _g, child);
                        _expr = dy;
                        if (isInput) Emit("∂L/∂x", $"∂L/∂x = {dy}", _g.ShapeString, _g, child);
                    }
                    else if (isInput)
                    {
                        Emit("∂L/∂x", $"∂L/∂x = {rhs}", shape, _g, child);
                    }
                    else
                    {
                        _factors.Add(new Factor($"∂L/∂h{Subscript(l - 1)}", rhs, _g));
                        _expr = rhs;
                    }
                    break;
                }
                case 1:
                {
                    var grad = Float64Math.MatMul(Float64Math.Transpose(delta), Float64Math.Matrix(x));
                    string shape = $"{delta.ShapeString}ᵀ·{x.ShapeString} → {grad.ShapeString}";
                    var xFactor = new Factor(InputOf(l), l == 1 ? "the input" : $"the output of layer {l - 1}", x);
                    string name = $"∂L/∂W{Subscript(l)}";
                    if (Rows)
                    {
                        var outer = Float64Math.Transpose(grad);
                        string dA = $"dA{Subscript(l)}";
                        string perSample = x.Rows > 1 ? ", summed over the batch" : "";
                        Emit(dA, $"{dA} = {InputOf(l)}·{deltaName}   (outer product {InputOf(l)}ᵀ·{deltaName} per sample{perSample})",
                            $"{x.Cols}×1 · 1×{delta.Cols} → {outer.ShapeString}", outer, null,
                            "numerator layout: the transpose of W's out × in shape", [xFactor]);
                        Emit(name, $"{name} = {dA}ᵀ", grad.ShapeString, grad, child, "in nn.Linear's out × in layout, as the problem file stores W");
                    }
                    else
                    {
                        string? note = x.Rows > 1 ? $"δ{Subscript(l)}ᵀ·{InputOf(l)} sums the per-sample outer products over the batch" : null;
                        Emit(name, $"{name} = {rhs}", shape, grad, child, note, [xFactor]);
                    }
                    break;
                }
                case 2:
                {
                    var grad = Float64Math.ColumnSums(delta);
                    string name = $"∂L/∂b{Subscript(l)}";
                    string? note = problem.Loss?.Op is LossOp<T> { Reduction: Reduction.Mean }
                        ? "the 1/N of the mean reduction is already inside δ_L, so this is a plain sum over the batch (N × the batch mean of δ)"
                        : null;
                    Emit(name, $"{name} = {rhs}", $"Σ_batch {delta.ShapeString} → {grad.ShapeString}", grad, child, note);
                    break;
                }
            }
        }

        // ---------------------------------------------------------------- Jacobian

        /// <summary>
        /// For loss none with a vector output and a batch of one: d y_L / d b_i = J_L·A_L·J_{L−1}·…·J_i, where
        /// J_l = diag(f′_l(z_l)) (or diag(s) − s·sᵀ for softmax), checked against the tape's reverse-mode Jacobian.
        /// </summary>
        public List<DerivationStep> JacobianSteps()
        {
            var steps = new List<DerivationStep>();
            if (problem.Loss is not null || problem.Output.Value.Length <= 1 || problem.Spec.BatchSize != 1) return steps;
            if (problem.Network.Layers.Any(layer => layer.Kind != DenseKind.KindName)) return steps; // the product form is the dense chain's
            int i = LayerIndexOfTarget();
            if (i < 1 || problem.Network.Layers[i - 1].MainBias() is not { } bias) return steps;
            int L = LayerCount;
            string y = Rows ? $"y{Subscript(L + 1)}" : "ŷ";
            var symbols = new List<string>();
            var factors = new List<Factor>();
            Tensor<double>? product = null;
            for (int l = L; l >= i; l--)
            {
                var j = LocalJacobian(l, out string sym, out string def);
                symbols.Add(sym);
                factors.Add(new Factor(sym, def, j));
                product = product is null ? j : Float64Math.MatMul(product, j);
                if (l > i)
                {
                    var w = ToFloat64(problem.Network.Layers[l - 1].MainWeight()!.Value);
                    symbols.Add(WeightSymbol(l));
                    factors.Add(new Factor(WeightSymbol(l), $"the weight of layer {l}", w));
                    product = Float64Math.MatMul(product, w);
                }
            }
            var tapeJacobian = ToFloat64(problem.Jacobian(bias));
            problem.Forward();
            problem.Backward(); // Jacobian rows reseeded the tape; restore the objective's gradients
            string name = $"d{y}/d{BiasSymbol(i)}";
            steps.Add(new DerivationStep(name, $"{name} = {string.Join("·", symbols)}",
                $"{product!.ShapeString} (rows: output elements, columns: elements of {BiasSymbol(i)})", product, factors,
                ["dz = dh ⊙ f′(z) as the matrix diag(f′(z)); dx = dz·W"], "compared with the tape's reverse-mode Jacobian (one pass per output element)",
                Float64Math.RelativeDeviation(product, tapeJacobian)));
            return steps;
        }

        private int LayerIndexOfTarget()
        {
            for (int l = 1; l <= LayerCount; l++)
            {
                var layer = problem.Network.Layers[l - 1];
                if (layer.Parameters.Any(p => ReferenceEquals(p.Value, target))) return l;
            }
            return -1;
        }

        private Tensor<double> LocalJacobian(int l, out string symbol, out string definition)
        {
            var a = Act(l);
            var zVar = problem.Trace.Z[l - 1];
            var hVar = problem.Trace.H[l - 1];
            string zName = Rows ? $"{WeightSymbol(l)}{InputOf(l)}{(HasBias(l) ? $" + {BiasSymbol(l)}" : "")}" : PreActivationSymbol(l);
            if (a.IsElementwise)
            {
                var d = new T[zVar.Value.Length];
                a.Derivative(zVar.Value.Data, hVar.Value.Data, d);
                var v = new Tensor<double>(d.Select(e => double.CreateTruncating(e)).ToArray(), d.Length);
                symbol = $"diag({a.Symbol}′({zName}))";
                definition = a.DerivativeFormula;
                return Float64Math.Diag(v);
            }
            var s = ToFloat64(hVar.Value);
            int n = s.Length;
            var j = new Tensor<double>(n, n);
            for (int r = 0; r < n; r++)
                for (int c = 0; c < n; c++) j.Data[r * n + c] = (r == c ? s.Data[r] : 0) - s.Data[r] * s.Data[c];
            symbol = $"(diag(s{Subscript(l)}) − s{Subscript(l)}ᵀs{Subscript(l)})";
            definition = a.DerivativeFormula;
            return j;
        }
    }
}
