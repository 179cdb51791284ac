using System.Text;

namespace Backprop.IO;

/// <summary>
/// Writes files atomically: the content goes to a uniquely named temporary file in the same directory,
/// which is flushed to disk (fsync) and then renamed over the destination. Readers see either the old
/// file or the complete new one, never a partial write. On failure the temporary file is removed and the
/// destination is left untouched. A symbolic link is followed (the file it names is replaced, and the link kept); a
/// destination that exists and is not a regular file (a named pipe, /dev/null, /dev/stdout) is written in place.
/// </summary>
public static partial class AtomicFile
{
    /// <summary>
    /// A process killed mid-write (kill -9) leaves its temp file behind; the next write of the same file removes
    /// such leftovers that are older than a minute, so that a concurrent writer's live temp is never touched.
    /// </summary>
    private static void RemoveStaleTemps(string dir, string name)
    {
        try
        {
            foreach (var f in Directory.EnumerateFiles(dir, $".{name}.*.tmp"))
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(f) > TimeSpan.FromMinutes(1)) File.Delete(f);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes <paramref name="path"/> atomically with the bytes <paramref name="write"/> puts into the stream.</summary>
    /// <remarks>The stream is a buffered <see cref="FileStream"/>; <paramref name="write"/> must not dispose it.
    /// The destination directory must exist. Two concurrent writers of the same path each write their own temporary
    /// file; the last rename wins and the file is always one of the two complete contents.</remarks>
    /// <param name="path">The destination file; relative paths are resolved against the current directory.</param>
    /// <param name="write">Writes the whole content into the stream it is given.</param>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty, ends in a directory separator or is an existing directory.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> or <paramref name="write"/> is null.</exception>
    /// <exception cref="DirectoryNotFoundException">The destination's directory does not exist (the message names the destination).</exception>
    /// <exception cref="IOException">The temporary file cannot be created, written or renamed (the destination is unchanged;
    /// the message names the destination and the reason: "cannot write /dev/full: no space left on device"); an exception
    /// thrown by <paramref name="write"/> propagates likewise, after the temporary file is removed (an IOException worded
    /// so).</exception>
    /// <exception cref="UnauthorizedAccessException">The file system refuses the write ("cannot write P: permission denied").</exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        // The rename replaced what the path named: a link with a regular file (the file it named unchanged), a named
        // pipe with a file its reader never saw, and, as root, /dev/null or /dev/stdout with a regular file.
        if (NotARegularFile(full))
        {
            try
            {
                using var direct = new FileStream(full, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 16);
                write(direct);
                direct.Flush();
            }
            catch (IOException e) { throw CannotWrite(full, e); }
            return;
        }
        if (new FileInfo(full).LinkTarget is not null && File.ResolveLinkTarget(full, returnFinalTarget: true) is { } target) full = target.FullName;
        string dir = Path.GetDirectoryName(full) ?? ".";
        string name = Path.GetFileName(full);
        if (name.Length == 0) throw new ArgumentException($"'{path}' names a directory, not a file", nameof(path));
        // Refused before anything is written: the rename over a directory would fail only after the whole content was
        // written to the temporary file, as "Is a directory" (IOException), which the CLI reports as an internal error.
        // No parameter name: the message is the CLI's whole line ("backprop: /tmp is a directory, not a file").
        if (Directory.Exists(full)) throw new ArgumentException($"{path} is a directory, not a file");

        // named here, not through the temporary file that would fail to open
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"cannot write {full}: the directory {dir} does not exist");
        RemoveStaleTemps(dir, name);
        string temp = Path.Combine(dir, $".{name}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e)
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (e is IOException or UnauthorizedAccessException) throw CannotWrite(full, e);
            throw;
        }
    }

    /// <summary>
    /// A failure of the file system said of the destination, not of the temporary file: "cannot write /dev/full: no
    /// space left on device" for .NET's "No space left on device : '/tmp/.m.safetensors.3f2a….tmp'", and "cannot write
    /// /proc/version: its directory takes no new files" where the temporary file could not be made in /proc.
    /// </summary>
    private static Exception CannotWrite(string destination, Exception e)
    {
        string message = $"cannot write {destination}: {Reason(e)}";
        return e is UnauthorizedAccessException ? new UnauthorizedAccessException(message, e) : new IOException(message, e);
    }

    /// <summary>
    /// The file system's reason for a failed write or a directory not made, in a few lower-case words without .NET's
    /// quoted path (which may name a temporary file): "permission denied", "no space left on device", and "its directory
    /// takes no new files" where the place to create it does not exist or refuses entries (as /proc does).
    /// </summary>
    internal static string Reason(Exception e)
    {
        ArgumentNullException.ThrowIfNull(e);
        string reason = e switch
        {
            UnauthorizedAccessException => "permission denied",
            FileNotFoundException or DirectoryNotFoundException => "its directory takes no new files",
            _ => System.Text.RegularExpressions.Regex.Replace(e.Message, @"\s*:\s*'[^']*'\.?\s*$", "").TrimEnd('.', ' '),
        };
        if (reason.Length > 1 && char.IsUpper(reason[0]) && char.IsLower(reason[1])) reason = char.ToLowerInvariant(reason[0]) + reason[1..];
        return reason;
    }

    /// <summary>Whether <paramref name="path"/> (links followed) exists and is neither a regular file nor a directory
    /// (statx on Linux, whose layout is the same on every architecture; elsewhere, never).</summary>
    private static unsafe bool NotARegularFile(string path)
    {
        if (!OperatingSystem.IsLinux()) return false;
        const int AtFdCwd = -100, StatxType = 1, ModeOffset = 28;
        const ushort TypeMask = 0xF000, Regular = 0x8000, Directory = 0x4000;
        byte* buffer = stackalloc byte[256];   // struct statx
        try
        {
            if (statx(AtFdCwd, path, 0, StatxType, buffer) != 0) return false;   // missing, or unknown: as before
        }
        catch (EntryPointNotFoundException) { return false; }   // a C library before glibc 2.28
        catch (DllNotFoundException) { return false; }
        ushort type = (ushort)(*(ushort*)(buffer + ModeOffset) & TypeMask);
        return type != Regular && type != Directory;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Write(path, s => s.Write(bytes, 0, bytes.Length));
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> atomically, as UTF-8 without a byte-order mark unless <paramref name="encoding"/> says otherwise.</summary>
    public static void WriteAllText(string path, string text, Encoding? encoding = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var enc = encoding ?? new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        Write(path, s =>
        {
            var preamble = enc.GetPreamble();
            if (preamble.Length > 0) s.Write(preamble);
            s.Write(enc.GetBytes(text));
        });
    }

    /// <summary>Writes the lines, each followed by '\n', to <paramref name="path"/> atomically as UTF-8.</summary>
    public static void WriteAllLines(string path, IEnumerable<string> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        Write(path, s =>
        {
            using var w = new StreamWriter(s, new UTF8Encoding(false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
            foreach (var line in lines) w.WriteLine(line);
        });
    }
}
