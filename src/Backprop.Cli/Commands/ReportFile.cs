using System.Numerics;
using Backprop.Reports;
using Backprop.Training;

namespace Backprop.Cli.Commands;

/// <summary>train --report DIR: the run's page, with a directory that cannot be written said in one line (exit 2) before any training.</summary>
public static class ReportFile
{
    public static TrainingReport Start<T>(string directory, TrainingRun<T> run, string networkText) where T : unmanaged, IFloatingPointIeee754<T>
    {
        try { return TrainingReport.Start(directory, run, networkText); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException(Cli.Unwritable(e) ? $"--report {directory}: {e.Message}"
                : $"--report {directory}: cannot write {Path.Combine(directory, TrainingReport.FileName)} ({(e is UnauthorizedAccessException ? "permission denied" : e.Message)})");
        }
    }
}
