using System.Numerics;
using Backprop.Kernels;

namespace Backprop.Tests.Kernels;

/// <summary>
/// Products with a B packed once give the bits of <see cref="Gemm.Multiply{T}(ComputeContext, bool, bool, int, int, int, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, bool, bool, IGemmBlockFinish?)"/>
/// (A·Bᵀ, C prefilled with the starting row and accumulated) on every GEMM family, precision and thread count, over
/// edge shapes: one row (the matrix-vector path), ragged tiles and panels, several depth blocks, the tiny and narrow paths;
/// and with the relu epilogue, the bits of the product followed by the tape's relu.
/// </summary>
public class PackedMatrixTests
{
    public static IEnumerable<object[]> Cases() =>
        from p in new[] { nameof(GemmPath.Avx512), nameof(GemmPath.Avx2), nameof(GemmPath.Portable) }
        from f64 in new[] { false, true }
        from threads in new[] { 1, 2 }
        from smallBlocks in new[] { false, true }
        select new object[] { p, f64, threads, smallBlocks };

    /// <param name="smallBlocks">
    /// Blocks pinned small whatever this CPU's caches give: depth blocks of 64 (k = 13 under one block, 64 and 128
    /// exact multiples, 150 ending in a short block) and row blocks of a few micro-panels (m = 130 in several, the
    /// last ragged), so that the later blocks' offsets, addends and epilogue run on every machine.
    /// </param>
    [Theory]
    [MemberData(nameof(Cases))]
    public void EqualsGemmBitForBit(string pathName, bool float64, int threads, bool smallBlocks)
    {
        var path = Enum.Parse<GemmPath>(pathName);
        if (!ComputeContext.IsSupported(path)) return;   // this CPU cannot run the family: nothing to compare here
        var tuning = KernelTuning.Default;
        if (threads > 1) tuning = tuning with { MinMacsPerThread = 1 };
        if (smallBlocks)
        {
            int nrFloat = Gemm.Tile<float>(path).NR, nrDouble = Gemm.Tile<double>(path).NR;
            tuning = tuning with { KcBytes = 64 * nrFloat * sizeof(float), Float64KcBytes = 64 * nrDouble * sizeof(double), McBytes = 8 * 1024 };
        }
        using var context = new ComputeContext(threads, tuning, path);
        int[] depths = smallBlocks ? [13, 64, 128, 150] : [0, 13, 40, 800];
        if (float64) Grid<double>(context, depths); else Grid<float>(context, depths);
    }

    private static void Grid<T>(ComputeContext context, int[] depths) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rng = new Random(7);
        foreach (int k in depths)
            foreach (int n in new[] { 1, 5, 17, 33, 70 })
            {
                var b = Random<T>(rng, n * k);
                var packed = new PackedMatrix<T>(context, n, k, b);
                foreach (int m in new[] { 1, 2, 7, 9, 130 })
                    foreach (bool init in new[] { false, true })
                    {
                        var a = Random<T>(rng, m * k);
                        var row = init ? Random<T>(rng, n) : [];
                        var want = new T[m * n];
                        var got = new T[m * n];
                        got.AsSpan().Fill(T.CreateChecked(12345));   // whatever C held before is overwritten
                        for (int i = 0; i < m && init; i++) row.CopyTo(want.AsSpan(i * n));
                        Gemm.Multiply<T>(context, false, true, m, n, k, a, b, want, accumulate: init);
                        packed.Multiply(context, m, a, got, row);
                        for (int i = 0; i < want.Length; i++)
                            Assert.True(want[i] == got[i], $"{typeof(T).Name} {m}×{n}×{k} init={init} {context}: C[{i}] = {got[i]}, Gemm gives {want[i]}");
                        // the relu epilogue: the same sums, then z > 0 ? z : +0 as the tape's relu
                        var relu = new T[m * n];
                        relu.AsSpan().Fill(T.CreateChecked(-7));
                        packed.Multiply(context, m, a, relu, row, epilogue: GemmEpilogue.Relu);
                        ActivationKernels.ReluForward<T>(want, want);
                        for (int i = 0; i < want.Length; i++)
                            Assert.True(want[i] == relu[i] && T.IsNegative(relu[i]) == T.IsNegative(want[i]),
                                $"{typeof(T).Name} {m}×{n}×{k} init={init} {context}, relu: C[{i}] = {relu[i]}, Gemm then relu gives {want[i]}");
                    }
            }
    }

    /// <summary>Values in [−1, 1), a fifth of them exact zeros (the zero-skipping paths run too).</summary>
    private static T[] Random<T>(Random rng, int length) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var v = new T[length];
        for (int i = 0; i < length; i++) v[i] = rng.Next(5) == 0 ? T.Zero : T.CreateChecked(rng.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>
    /// The narrow and tiny paths read B from the matrix's own plain copy through a pointer, taken once per product, so
    /// that copy must not move: compacting collections (which another thread's allocations may start in the middle of
    /// a product) leave it where it was, and products after them still give the same bits. CI once saw an inference
    /// test's narrow last layer give −9.51 for −9.34 while other tests allocated: the copy had moved and its old place
    /// was reused. Unpinned, the copy below moved on the first collection, every run.
    /// </summary>
    [Theory]
    [InlineData(5, 70)]   // the narrow dot products (n ≤ 16, k ≥ 32)
    [InlineData(3, 8)]    // the tiny loop (n·k ≤ TinyMacs)
    public unsafe void ThePlainCopyDoesNotMoveInCompactingCollections(int n, int k)
    {
        using var context = new ComputeContext(1);
        var rng = new Random(3);
        int m = 40;
        var a = Random<double>(rng, m * k);
        var b = Random<double>(rng, n * k);
        var want = new double[m * n];
        Gemm.Multiply<double>(context, false, true, m, n, k, a, b, want, accumulate: false);
        var junk = new List<double[]>();
        for (int i = 0; i < 1000; i++) junk.Add(new double[64]);   // young garbage before the copy: compaction slides it down
        var packed = new PackedMatrix<double>(context, n, k, b);
        Assert.True(packed.HasPlain);
        nint before = (nint)packed.PlainPointer;
        junk.Clear();
        for (int round = 0; round < 3; round++)
        {
            GC.Collect(round, GCCollectionMode.Forced, blocking: true, compacting: true);
            Assert.Equal(before, (nint)packed.PlainPointer);
            var got = new double[m * n];
            packed.Multiply(context, m, a, got);
            Assert.Equal(want, got);
        }
    }

    /// <summary>
    /// A NaN in A reaches the relu epilogue on every path (a full tile, the ragged last rows, a partial column panel,
    /// one row, the narrow and tiny products) and comes out +0, as the tape's relu makes it. B's rows at the NaN's
    /// depths hold no zeros, so no path can skip the step that carries it.
    /// </summary>
    [Theory]
    [InlineData(130, 70, 150)]   // full tiles, a ragged last micro-panel (130 = 16·8 + 2), a partial panel (70 = 2·32 + 6)
    [InlineData(1, 70, 150)]     // the one-row path
    [InlineData(9, 5, 70)]       // the narrow dot products
    [InlineData(2, 3, 8)]        // the tiny loop
    public void ANaNThroughTheReluEpilogueIsZeroAsTheTapesRelu(int m, int n, int k)
    {
        foreach (var path in new[] { GemmPath.Avx512, GemmPath.Avx2, GemmPath.Portable }.Where(ComputeContext.IsSupported))
        {
            using var context = new ComputeContext(1, null, path);
            var rng = new Random(11);
            var a = Random<double>(rng, m * k);
            var b = Random<double>(rng, n * k);
            var nanAt = new[] { (row: 0, depth: 3), (row: m - 1, depth: k - 1) };
            foreach (var (row, depth) in nanAt)
            {
                a[row * k + depth] = double.NaN;
                for (int j = 0; j < n; j++) b[j * k + depth] = 0.5;
            }
            var bias = Random<double>(rng, n);
            var want = new double[m * n];
            for (int i = 0; i < m; i++) bias.CopyTo(want.AsSpan(i * n));
            Gemm.Multiply<double>(context, false, true, m, n, k, a, b, want, accumulate: true);
            ActivationKernels.ReluForward<double>(want, want);
            var got = new double[m * n];
            new PackedMatrix<double>(context, n, k, b).Multiply(context, m, a, got, bias, epilogue: GemmEpilogue.Relu);
            foreach (var (row, _) in nanAt)
                for (int j = 0; j < n; j++)
                    Assert.True(got[row * n + j] == 0 && !double.IsNegative(got[row * n + j]), $"{path} {m}×{n}×{k}: row {row} column {j} is {got[row * n + j]}");
            Assert.Equal(want, got);
        }
    }

    [Fact]
    public void RefusesAnEpilogueThatIsNotOne()
    {
        using var context = new ComputeContext(1);
        var packed = new PackedMatrix<float>(context, 20, 40, new float[800]);
        Assert.Throws<ArgumentOutOfRangeException>(() => packed.Multiply(context, 1, new float[40], new float[20], epilogue: (GemmEpilogue)7));
    }

    [Fact]
    public void RefusesAContextWithOtherKernels()
    {
        using var portable = new ComputeContext(1, null, GemmPath.Portable);
        using var tuned = new ComputeContext(1, KernelTuning.Default with { KcBytes = 1024 }, GemmPath.Portable);
        var packed = new PackedMatrix<float>(portable, 20, 40, new float[800]);
        Assert.Throws<ArgumentException>(() => packed.Multiply(tuned, 1, new float[40], new float[20]));
    }
}
