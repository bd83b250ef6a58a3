using System.Diagnostics;

namespace FastBroker.Testing;

/// <summary>
/// A tmpfs of a given size mounted for one test (needs root or CAP_SYS_ADMIN): a real small disk, so "full" and
/// "used" are exactly what the code under test allocated. Unmounts on dispose (lazily if still busy).
/// </summary>
public sealed class TmpfsMount : IDisposable
{
    private TmpfsMount(string path) => Path = path;

    public string Path { get; }

    /// <summary>Mounts at <paramref name="path"/> (created); null with the reason when mounting is not allowed.</summary>
    public static TmpfsMount? TryMount(string path, string size, out string why)
    {
        Directory.CreateDirectory(path);
        var (ok, error) = Run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path);
        why = error;
        return ok ? new TmpfsMount(path) : null;
    }

    /// <summary>Bytes in use on the file system.</summary>
    public long Used
    {
        get
        {
            var drive = new DriveInfo(Path);
            return drive.TotalSize - drive.TotalFreeSpace;
        }
    }

    public void Dispose()
    {
        if (!Run("umount", Path).Ok)
        {
            Run("umount", "-l", Path);
        }
    }

    private static (bool Ok, string Error) Run(string file, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in args)
            {
                psi.ArgumentList.Add(a);
            }

            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode == 0, err.Trim());
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return (false, e.Message);
        }
    }
}
