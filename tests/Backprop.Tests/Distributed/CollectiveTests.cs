using Backprop.Distributed;
using Backprop.Training;

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
    public void TheStartGateTellsEveryMemberTheLowestFailingRanksErrorInsteadOfLeavingThemWaiting()
    {
        // members 1 and 2 fail while setting up (before any collective call), member 0 and 3 get ready and call a
        // broadcast: all four learn member 1's error, and none waits
        var learned = new MemberFailedException?[4];
        OnThreads(4, m =>
        {
            var gate = new StartGate(m);
            if (m.Rank is 1 or 2) { learned[m.Rank] = gate.Fail($"rank {m.Rank}'s file is missing", exitCode: 2 + m.Rank); return; }
            learned[m.Rank] = Assert.Throws<MemberFailedException>(() => gate.Broadcast<double>(new double[8]));
            Assert.True(gate.Started);
        }, TimeSpan.FromSeconds(20));
        Assert.All(learned, f =>
        {
            Assert.NotNull(f);
            Assert.Equal(1, f!.Rank);
            Assert.Equal("rank 1's file is missing", f.Detail);
            Assert.Equal("rank 1: rank 1's file is missing", f.Message);
            Assert.Equal(3, f.ExitCode);
        });
    }

    [Fact]
    public void AStartGateWhoseMembersAreAllReadyPassesTheCallsOnAndRefusesALateFailure()
    {
        var seen = new double[3][];
        OnThreads(3, m =>
        {
            var gate = new StartGate(m);
            Assert.False(gate.Started);
            var data = new double[] { m.Rank + 1, 10 };
            gate.AllReduceSum<double>(data);
            gate.Broadcast<double>(data, root: 2);
            seen[m.Rank] = data;
            // past the start a failure can leave others inside a collective call: the gate cannot agree it any more
            Assert.Throws<InvalidOperationException>(() => gate.Fail("too late", 2));
        });
        Assert.All(seen, s => Assert.Equal([6.0, 30.0], s));
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

public class CollectiveBlockTests
{
    [Theory]
    [InlineData(1, 5)]
    [InlineData(3, 10)]   // blocks of 4, 3, 3
    [InlineData(4, 2)]    // two members own no values
    public void ReduceScatterThenAllGatherIsAnAllReduce(int size, int length)
    {
        var members = InProcessCollective.Create(size);
        var data = Enumerable.Range(0, size).Select(r => Enumerable.Range(0, length).Select(i => (double)(r * 100 + i)).ToArray()).ToArray();
        var counts = Enumerable.Range(0, size).Select(r => DataParallel<double>.Share(length, r, size).Count).ToArray();
        var errors = new Exception?[size];
        var threads = Enumerable.Range(0, size).Select(r => new Thread(() =>
        {
            try
            {
                members[r].ReduceScatterSum<double>(data[r], counts);
                // this member's block holds the sum over members
                var (start, count) = DataParallel<double>.Share(length, r, size);
                for (int i = start; i < start + count; i++)
                    Assert.Equal(Enumerable.Range(0, size).Sum(m => (double)(m * 100 + i)), data[r][i]);
                members[r].AllGather<double>(data[r], counts);
            }
            catch (Exception e) { errors[r] = e; members[r].Abort(); }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        foreach (var e in errors) if (e is not null) throw new Xunit.Sdk.XunitException(e.ToString());
        for (int r = 0; r < size; r++)
            for (int i = 0; i < length; i++)
                Assert.Equal(Enumerable.Range(0, size).Sum(m => (double)(m * 100 + i)), data[r][i]);
    }

    [Fact]
    public void BlocksThatDoNotCutTheDataAreRefused()
    {
        var one = InProcessCollective.Create(1)[0];
        Assert.Throws<ArgumentException>(() => one.AllGather<double>(new double[5], [4]));
        Assert.Throws<ArgumentException>(() => SingleProcess.Instance.ReduceScatterSum<double>(new double[5], [2, 3]));
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
