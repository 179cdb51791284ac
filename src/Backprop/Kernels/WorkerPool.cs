using System.Diagnostics;

namespace Backprop.Kernels;

/// <summary>A unit of parallel work: <see cref="Execute"/> is called once for each part 0..parts-1.</summary>
internal abstract class WorkItem
{
    public abstract void Execute(int part, int parts);
}

/// <summary>
/// A small persistent pool of dedicated worker threads, one per <see cref="ComputeContext"/>, created when first
/// needed and grown only when more threads are asked for.
/// <see cref="TryRun"/> runs part 0 on the caller and parts 1.. on workers, and allocates nothing: workers spin
/// briefly for the next job and then sleep on a semaphore. One job at a time; a caller that finds the pool busy
/// (a concurrent caller, or a nested call from inside a job) gets <c>false</c> and should run the work itself.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    /// <summary>How long an idle worker spins for the next job before it sleeps.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 µs

    private readonly object _growLock = new();
    private Worker[] _workers = [];
    private int _busy;
    private int _disposed;

    private int _pending;
    private Exception? _error;

    private sealed class Worker
    {
        public readonly SemaphoreSlim Wake = new(0, int.MaxValue);
        public int Sleeping;
        public int Index; // part index this worker runs (1-based)
        public WorkItem? Job;
        public int Parts;
        public int Seq; // incremented by the dispatcher once Job and Parts are set
        public volatile bool Stop; // set by Dispose: the worker's thread ends at its next wake-up
        public Thread? Thread;
    }

    public int WorkerCount => _workers.Length;

    // Per submitting thread: a one-element array, so that adding to it is a write through the array rather than
    // a set of ThreadLocal.Value.
    private readonly ThreadLocal<long[]> _workerBytes = new(() => new long[1]);
    private long _jobAllocated;

    /// <summary>
    /// Bytes the worker threads allocated on the managed heap while running jobs that the calling thread submitted:
    /// the worker-thread counterpart of <see cref="GC.GetAllocatedBytesForCurrentThread"/>, for zero-allocation checks.
    /// Jobs run one at a time, so each worker's allocation during a job is attributed exactly to that job's caller,
    /// whatever other threads submit meanwhile.
    /// </summary>
    public long AllocatedBytesForCurrentThread => _workerBytes.IsValueCreated ? _workerBytes.Value![0] : 0;   // reading allocates nothing

    /// <summary>Split jobs this pool has run (one count per <see cref="RunClaimed"/>): how tests see which pool did the work.</summary>
    internal long JobsRun => Volatile.Read(ref _jobsRun);
    private long _jobsRun;

    /// <summary>Runs <paramref name="item"/> split in <paramref name="parts"/> parts; false when the pool is busy or disposed.</summary>
    public bool TryRun(WorkItem item, int parts)
    {
        if (parts <= 1)
        {
            item.Execute(0, 1);
            return true;
        }
        if (!TryClaim()) return false;
        try
        {
            RunClaimed(item, parts);
            return true;
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// Makes the calling thread the pool's one job owner; false when the pool is busy (another caller's job, or a nested
    /// call from inside a running job, this thread's own included) or disposed. A caller that prepares a job in memory
    /// that a nested call could reach claims the pool first, so the nested call finds it busy and leaves the job alone.
    /// Pair with <see cref="Release"/>.
    /// </summary>
    public bool TryClaim()
    {
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0) return false;
        if (Volatile.Read(ref _disposed) != 0)
        {
            Volatile.Write(ref _busy, 0);
            return false;
        }
        return true;
    }

    /// <summary>Ends the claim of <see cref="TryClaim"/>.</summary>
    public void Release() => Volatile.Write(ref _busy, 0);

    /// <summary>Runs <paramref name="item"/> split in <paramref name="parts"/> (at least 2) parts; only the owner of a claim may call it.</summary>
    public void RunClaimed(WorkItem item, int parts)
    {
        EnsureWorkers(parts - 1);
        _error = null;
        Volatile.Write(ref _pending, parts - 1);
        var workers = _workers;
        for (int w = 0; w < parts - 1; w++)
        {
            var wk = workers[w];
            wk.Job = item;
            wk.Parts = parts;
            Interlocked.Increment(ref wk.Seq); // publishes Job and Parts
            if (Interlocked.Exchange(ref wk.Sleeping, 0) == 1) wk.Wake.Release();
        }

        Exception? mine = null;
        try { item.Execute(0, parts); }
        catch (Exception e) { mine = e; }

        var sw = new SpinWait();
        while (Volatile.Read(ref _pending) != 0) sw.SpinOnce(sleep1Threshold: -1);
        _workerBytes.Value![0] += Interlocked.Exchange(ref _jobAllocated, 0);
        for (int w = 0; w < parts - 1; w++) workers[w].Job = null;
        Volatile.Write(ref _jobsRun, _jobsRun + 1);   // only the claim owner writes it
        var err = mine ?? _error;
        if (err != null) throw new AggregateException("a GEMM worker failed", err);
    }

    private void EnsureWorkers(int count)
    {
        if (_workers.Length >= count) return;
        lock (_growLock)
        {
            if (_workers.Length >= count) return;
            var grown = new Worker[count];
            Array.Copy(_workers, grown, _workers.Length);
            for (int i = _workers.Length; i < count; i++)
            {
                var wk = new Worker { Index = i + 1 };
                grown[i] = wk;
                var t = new Thread(() => Loop(wk)) { IsBackground = true, Name = $"Backprop.Gemm worker {i + 1}" };
                wk.Thread = t;
                t.Start();
            }
            _workers = grown;
        }
    }

    /// <summary>
    /// Ends the worker threads (each at its next wake-up; a sleeping one is woken). Waits for a running job to finish
    /// first; later <see cref="TryRun"/> calls return false, so their callers run the work themselves.
    /// </summary>
    public void Dispose()
    {
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref _busy, 1, 0) != 0) spin.SpinOnce();
        try
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            lock (_growLock)
            {
                foreach (var wk in _workers)
                {
                    wk.Stop = true;
                    Interlocked.Increment(ref wk.Seq);
                    if (Interlocked.Exchange(ref wk.Sleeping, 0) == 1) wk.Wake.Release();
                }
            }
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Waits for every worker thread to end (after <see cref="Dispose"/>); false if one is still running after the timeout.</summary>
    internal bool JoinWorkers(TimeSpan timeout)
    {
        foreach (var wk in _workers)
            if (wk.Thread is { } t && !t.Join(timeout)) return false;
        return true;
    }

    private void Loop(Worker wk)
    {
        int seen = 0;
        while (!wk.Stop)
        {
            // Wait for a new epoch: spin a little, then sleep.
            long start = Stopwatch.GetTimestamp();
            var sw = new SpinWait();
            while (Volatile.Read(ref wk.Seq) == seen)
            {
                if (Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    sw.SpinOnce(sleep1Threshold: -1);
                    continue;
                }
                Interlocked.Exchange(ref wk.Sleeping, 1); // full fence before re-reading Seq
                if (Volatile.Read(ref wk.Seq) != seen)
                {
                    // A job arrived while going to sleep: cancel, unless the dispatcher already claimed the wake-up.
                    if (Interlocked.Exchange(ref wk.Sleeping, 0) == 0) wk.Wake.Wait();
                    break;
                }
                wk.Wake.Wait();
                start = Stopwatch.GetTimestamp();
                sw = new SpinWait();
            }
            seen = Volatile.Read(ref wk.Seq);
            var job = wk.Job;
            if (job == null || wk.Stop) continue;
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { job.Execute(wk.Index, wk.Parts); }
            catch (Exception e) { _error = e; }
            Interlocked.Add(ref _jobAllocated, GC.GetAllocatedBytesForCurrentThread() - before);
            Interlocked.Decrement(ref _pending);
        }
    }
}
