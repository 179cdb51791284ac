using Backprop.Distributed;

namespace Backprop.Tests.Distributed;

/// <summary>The in-process collective: what MPI's broadcast, all-reduce and barrier do, among threads.</summary>
public class CollectiveTests
{
    private static void OnThreads(int size, Action<InProcessCollective> body, TimeSpan? timeout = null)
    {
        var members = InProcessCollective.Create(size, timeout);
        var errors = new Exception?[size];
        var threads = members.Select((m, r) => new Thread(() =>
        {
            try { body(m); }
            catch (Exception e) { errors[r] = e; m.Abort(); }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(30)), "a member hung");
        foreach (var e in errors) if (e is not null) throw e;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void AllReduceSumsInRankOrderAndEveryMemberGetsTheSameBits(int size)
    {
        var results = new double[size][];
        OnThreads(size, m =>
        {
            var data = Enumerable.Range(0, 1000).Select(i => Math.Sin(i * (m.Rank + 1)) * 1e-3 + m.Rank).ToArray();
            m.AllReduceSum<double>(data);
            results[m.Rank] = data;
        });
        for (int i = 0; i < 1000; i++)
        {
            double expected = 0;
            for (int r = 0; r < size; r++) expected += Math.Sin(i * (r + 1)) * 1e-3 + r;
            Assert.Equal(expected, results[0][i], 12);
            for (int r = 1; r < size; r++) Assert.Equal(BitConverter.DoubleToInt64Bits(results[0][i]), BitConverter.DoubleToInt64Bits(results[r][i]));
        }
    }

    [Fact]
    public void BroadcastCopiesTheRootsValuesAndRepeatedCallsKeepTheirOrder()
    {
        var seen = new float[3][];
        OnThreads(3, m =>
        {
            var data = new float[5];
            if (m.Rank == 2) data = [1, 2, 3, 4, 5];
            m.Broadcast<float>(data, root: 2);
            var sum = new float[] { m.Rank };
            m.AllReduceSum<float>(sum);
            m.Barrier();
            seen[m.Rank] = [.. data, sum[0]];
        });
        Assert.All(seen, s => Assert.Equal([1, 2, 3, 4, 5, 3], s));
    }

    [Fact]
    public void AMemberThatFailsEndsTheOthersWaitInsteadOfHangingThem()
    {
        var e = Assert.ThrowsAny<Exception>(() => OnThreads(2, m =>
        {
            if (m.Rank == 1) throw new InvalidOperationException("rank 1 failed");
            m.AllReduceSum<double>(new double[3]);
            m.AllReduceSum<double>(new double[3]);
        }, TimeSpan.FromSeconds(20)));
        Assert.True(e is CollectiveException or InvalidOperationException, e.ToString());
    }

    [Fact]
    public void AMemberThatNeverArrivesTimesOut()
    {
        var members = InProcessCollective.Create(2, TimeSpan.FromMilliseconds(200));
        var e = Assert.Throws<CollectiveException>(() => members[0].Barrier());
        Assert.Contains("did not arrive within", e.Message);
    }

    [Fact]
    public void MpiOutsideMpirunIsOneClearLine()
    {
        if (MpiCollective.UnderMpirun) return;   // the test host itself under mpirun: nothing to check
        var e = Assert.Throws<MpiUnavailableException>(() => new MpiCollective());
        Assert.Contains("mpirun", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}

public class MpiLibraryTests
{
    [Fact]
    public void AMissingMpiLibraryNamesTheAptPackages()
    {
        var e = Assert.Throws<MpiUnavailableException>(() => new MpiCollective("libmpi-that-is-not-here.so.40"));
        Assert.Contains("openmpi-bin and libopenmpi-dev", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
