using Backprop.Nn;

namespace Backprop.Tests.Nn;

/// <summary>The architecture spec string: what each token makes, the canonical form, and one-line errors naming the token.</summary>
public class ArchitectureSpecTests
{
    [Fact]
    public void TheIssuesExampleMakesTheLayersInOrder()
    {
        var spec = ArchitectureSpec.Parse("784-512:relu:ln-256:relu:drop0.2-10");
        Assert.Equal(784, spec.Inputs);
        Assert.Equal(
            ["dense 512 relu", "layernorm 512 identity", "dense 256 relu", "dropout 256 identity", "dense 10 identity"],
            spec.Layers.Select(l => $"{l.Kind} {l.Outputs} {l.Activation}"));
        Assert.Equal(0.2, spec.Layers[3].Settings["p"]);
        Assert.Equal([784, 512, 256, 10], spec.DenseSizes);
        Assert.False(spec.IsPlainMlp);

        var net = spec.Create<float>();
        Assert.Equal(["dense", "layernorm", "dense", "dropout", "dense"], net.Layers.Select(l => l.Kind));
        Assert.Equal(0.2, ((DropoutLayer<float>)net.Layers[3]).P);
        Assert.Equal(spec.ToString(), ArchitectureSpec.Of(net).ToString());
    }

    [Theory]
    [InlineData("784-512:relu:ln-256:relu:drop0.2-10", "784-512:relu:ln-256:relu:drop0.2-10")]
    [InlineData("4-16:layernorm:tanh:dropout0.5-3", "4-16:ln:tanh:drop0.5-3")]
    [InlineData("4-16:bn:relu-8:batchnorm-3:sigmoid", "4-16:bn:relu-8:bn-3:sigmoid")]
    [InlineData("4:drop0.1-3", "4:drop0.1-3")]
    [InlineData("4:bn-3", "4:bn-3")]
    [InlineData(" 4-3 ", "4-3")]
    public void ASpecReadsBackToItsCanonicalForm(string text, string canonical)
    {
        var spec = ArchitectureSpec.Parse(text);
        Assert.Equal(canonical, spec.ToString());
        Assert.Equal(canonical, ArchitectureSpec.Parse(canonical).ToString());
        Assert.Equal(canonical, ArchitectureSpec.Of(spec.Create<double>()).ToString());
    }

    [Fact]
    public void TheFlagsPutTheNormBeforeAndDropoutAfterEachHiddenActivation()
    {
        var spec = ArchitectureSpec.Mlp([784, 512, 256, 10], "relu", "layernorm", 0.2);
        Assert.Equal("784-512:ln:relu:drop0.2-256:ln:relu:drop0.2-10", spec.ToString());
        var plain = ArchitectureSpec.Mlp([4, 8, 3], "tanh");
        Assert.Equal("4-8:tanh-3", plain.ToString());
        Assert.True(plain.IsPlainMlp);
        var batch = ArchitectureSpec.Mlp([4, 8, 3], "relu", "batchnorm");
        Assert.Equal(["dense", "batchnorm", "dense"], batch.Layers.Select(l => l.Kind));
        Assert.Equal("relu", batch.Layers[1].Activation);   // the activation follows the norm
        Assert.Equal("identity", batch.Layers[0].Activation);
    }

    [Theory]
    [InlineData("784-512:foo-10", "unknown token 'foo' in '512:foo'")]
    [InlineData("784-512:relu:drop1.5-10", "dropout p = 1.5 in '512:relu:drop1.5' must be in [0, 1)")]
    [InlineData("784-512:relu:drop1-10", "must be in [0, 1)")]
    [InlineData("784-512:relu:dropx-10", "dropout p = x")]
    [InlineData("784-512:drop0.2:relu-10", "activation 'relu' in '512:drop0.2:relu' follows a dropout layer, which takes none")]
    [InlineData("784-512:relu:tanh-10", "follows another activation (relu)")]
    [InlineData("784:relu-10", "activation 'relu' follows the input")]
    [InlineData("784--10", "block 2 is empty")]
    [InlineData("784-abc-10", "'abc' is not a width")]
    [InlineData("784-0-10", "'0' is not a width")]
    [InlineData("784", "needs an input width and at least one layer")]
    public void ABadSpecIsOneLineThatNamesTheFault(string text, string fragment)
    {
        var e = Assert.Throws<ArchitectureSpecException>(() => ArchitectureSpec.Parse(text));
        Assert.Contains(fragment, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ActivationNamesComeFromTheCatalog()
    {
        // an alias (linear) is the identity; a test-only activation is known only to its catalog
        Assert.Equal("4-8-3", ArchitectureSpec.Parse("4-8:linear-3").ToString());
        Assert.Throws<ArchitectureSpecException>(() => ArchitectureSpec.Parse($"4-8:{TestKinds.Softsign}-3"));
        Assert.Equal($"4-8:{TestKinds.Softsign}-3", ArchitectureSpec.Parse($"4-8:{TestKinds.Softsign}-3", TestKinds.Catalog).ToString());
    }
}
