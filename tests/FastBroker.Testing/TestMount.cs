using System.Diagnostics;

namespace FastBroker.Testing;

/// <summary>
/// A file system mounted for one test (needs root or CAP_SYS_ADMIN): a tmpfs of a given size (a real small disk, so
/// "full" and "used" are exactly what the code under test allocated) or a loop-mounted image made with mkfs.
/// Unmounts on dispose (lazily if still busy) and deletes the image.
/// </summary>
public sealed class TestMount : IDisposable
{
    private readonly string? _image;

    private TestMount(string path, string? image = null)
    {
        Path = path;
        _image = image;
    }

    public string Path { get; }

    /// <summary>Mounts at <paramref name="path"/> (created); null with the reason when mounting is not allowed.</summary>
    public static TestMount? TryMount(string path, string size, out string why)
    {
        Directory.CreateDirectory(path);
        var (ok, error) = Run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path);
        why = error;
        return ok ? new TestMount(path) : null;
    }

    /// <summary>
    /// Makes an image of <paramref name="sizeMiB"/> MiB next to <paramref name="path"/> with <c>mkfs.ext4</c> and
    /// <paramref name="mkfsOptions"/> (e.g. <c>^extent</c>: an ext3-style file system without fallocate) and
    /// loop-mounts it there; null with the reason when that is not possible.
    /// </summary>
    public static TestMount? TryMountExt4(string path, int sizeMiB, string mkfsOptions, out string why)
    {
        Directory.CreateDirectory(path);
        var image = path + ".img";
        using (var f = File.Create(image))
        {
            f.SetLength((long)sizeMiB << 20);
        }

        var (made, error) = Run("mkfs.ext4", "-q", "-F", "-O", mkfsOptions, image);
        if (made)
        {
            (made, error) = Run("mount", "-o", "loop", image, path);
        }

        why = error;
        if (!made)
        {
            File.Delete(image);
            return null;
        }

        return new TestMount(path, image);
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

        if (_image is not null)
        {
            File.Delete(_image);
        }
    }

    /// <summary>Runs a command to completion: whether it exited 0, and its stderr.</summary>
    public static (bool Ok, string Error) Run(string file, params string[] args)
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
