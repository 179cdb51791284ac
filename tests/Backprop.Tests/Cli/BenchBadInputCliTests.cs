using Backprop.Tests.Training;

namespace Backprop.Tests.Cli;

/// <summary>bench commands given sizes or thread counts they cannot run: one line naming the flags, exit 2, before any work.</summary>
public class BenchBadInputCliTests
{
    [Theory]
    [InlineData("bench infer --layers 2,1 --batch 2147483647", "--batch 2147483647 with --layers 2,1")]
    [InlineData("bench infer --layers 4,5,3 --batch 1073741824", "--batch 1073741824 with --layers 4,5,3")]
    [InlineData("bench train --layers 4,5,3 --batch 2147483647 --steps 1", "--batch 2147483647 with --layers 4,5,3")]
    [InlineData("bench train --arch 4-5:relu-3 --batch 1073741824 --steps 1", "--batch 1073741824 with --arch 4-5:relu-3")]
    [InlineData("bench gemm --m 100000 --n 100000 --k 1", "--m 100000 --n 100000")]
    [InlineData("bench gemm --m 1 --n 100000 --k 100000", "--k 100000 --n 100000")]
    public void Sizes_past_one_array_are_refused_naming_the_flags(string args, string mention) =>
        TrainingAssert.UsageError(CliRunner.Run(args.Split(' ')), mention);

    [Fact]
    public void The_gemm_benchmark_refuses_an_operand_past_one_array_with_an_argument_exception() =>
        Assert.Throws<ArgumentException>(() => Backprop.Kernels.GemmBenchmark.Run(100000, 100000, 1, float64: false));
}
