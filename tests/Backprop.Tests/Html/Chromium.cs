using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Backprop.Tests.Html;

/// <summary>
/// Headless Chromium (Debian's `chromium`; .ci/run installs it when missing): the DOM a page has after its scripts ran,
/// the console messages it logged, and screenshots.
/// </summary>
public static partial class Chromium
{
    public static string Executable =>
        Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } e ? e
        : new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }.FirstOrDefault(File.Exists)
          ?? throw new InvalidOperationException("chromium is not installed (apt-get install chromium; .ci/run installs it when missing)");

    public sealed record Run(int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>The console messages the page logged (Chromium writes them to stderr as INFO:CONSOLE lines).</summary>
        public IReadOnlyList<string> Console => Stderr.Split('\n').Where(l => l.Contains(":CONSOLE", StringComparison.Ordinal)).ToList();
    }

    private static Run Start(string page, params string[] extra)
    {
        var profile = Path.Combine(Path.GetTempPath(), $"backprop-chromium-{Guid.NewGuid():N}");
        var psi = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--enable-logging=stderr", "--v=0",
                     $"--user-data-dir={profile}" }.Concat(extra))
            psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(new Uri(Path.GetFullPath(page)).AbsoluteUri);
        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"chromium did not finish with {page} in 2 minutes");
            }
            return new Run(p.ExitCode, stdout.Result, stderr.Result);
        }
        finally
        {
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>The DOM after the page's load handlers ran.</summary>
    public static Run DumpDom(string page, int width = 1280, int height = 900) => Start(page, $"--window-size={width},{height}", "--dump-dom");

    /// <summary>A PNG of the page's first <paramref name="height"/> pixels at <paramref name="width"/>.</summary>
    public static Run Screenshot(string page, string png, int width, int height) => Start(page, $"--window-size={width},{height}", $"--screenshot={png}");

    /// <summary>The width and height in a PNG's header.</summary>
    public static (int Width, int Height) PngSize(string png)
    {
        var b = File.ReadAllBytes(png);
        Assert.True(b.Length > 24 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G', $"{png} is not a PNG");
        static int BigEndian(byte[] x, int o) => (x[o] << 24) | (x[o + 1] << 16) | (x[o + 2] << 8) | x[o + 3];
        return (BigEndian(b, 16), BigEndian(b, 20));
    }

    /// <summary>An attribute of the dumped &lt;body&gt; (the pages' measuring script writes its findings there).</summary>
    public static string? BodyAttribute(string dom, string name)
    {
        var body = BodyTag().Match(dom);
        if (!body.Success) return null;
        var m = Regex.Match(body.Value, $"\\s{Regex.Escape(name)}=\"([^\"]*)\"");
        return m.Success ? System.Net.WebUtility.HtmlDecode(m.Groups[1].Value) : null;
    }

    [GeneratedRegex("<body[^>]*>")]
    private static partial Regex BodyTag();

    /// <summary>The text of a DOM: tags removed, entities decoded, runs of white space as one space.</summary>
    public static string Text(string dom) => Space().Replace(System.Net.WebUtility.HtmlDecode(Tag().Replace(dom, " ")), " ");

    [GeneratedRegex("\\s+")]
    private static partial Regex Space();

    [GeneratedRegex("<[^>]+>")]
    private static partial Regex Tag();
}
