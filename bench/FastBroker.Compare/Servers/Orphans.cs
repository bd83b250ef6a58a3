using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace FastBroker.Compare.Servers;

/// <summary>
/// Finds servers by what this tool marks them with, in /proc: every server's directory is named
/// <c>fastbroker-compare-&lt;system&gt;-&lt;owner pid&gt;-&lt;guid&gt;</c> and is its working directory and (environment
/// <see cref="DirectoryVariable"/>, inherited by every process below it, RabbitMQ's daemonized epmd included) its marker;
/// RabbitMQ's node name is <c>fbcompare&lt;owner pid&gt;x&lt;port&gt;@localhost</c>. Kills a server's leftovers after its
/// tree kill (a process forked while the tree was being walked), and at the tool's start the servers and directories
/// of earlier runs whose owner is gone (a <c>kill -9</c> of the tool runs no handler).
/// </summary>
internal static partial class Orphans
{
    /// <summary>Set on every server: its directory (full path).</summary>
    public const string DirectoryVariable = "FASTBROKER_COMPARE_DIR";

    /// <summary>Set on every server: the pid of the tool run that started it.</summary>
    public const string OwnerVariable = "FASTBROKER_COMPARE_OWNER";

    /// <summary>A new directory for <paramref name="system"/>'s server, named with this process's pid as owner.</summary>
    public static string NewDirectory(string? workDirectory, string system)
    {
        var dir = Path.Combine(workDirectory ?? Path.GetTempPath(), $"fastbroker-compare-{system}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>
    /// SIGKILLs every process marked with <paramref name="directory"/> (or whose command line contains
    /// <paramref name="commandLineText"/>, e.g. RabbitMQ's node name) until a scan finds none left alive (10 s at most:
    /// a killed process forks no more, so each scan can only find fewer).
    /// </summary>
    public static void KillMarked(string directory, string? commandLineText)
    {
        var deadline = Stopwatch.GetTimestamp() + (10 * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var marked = Processes().Where(p => p.Directory == directory || (commandLineText is not null && p.CommandLine.Contains(commandLineText, StringComparison.Ordinal))).ToList();
            if (marked.Count == 0)
            {
                return;
            }

            marked.ForEach(p => Kill(p.Pid));
            Thread.Sleep(20);
        }
    }

    /// <summary>
    /// Kills the servers of earlier tool runs whose owner process is gone, and deletes their directories (in
    /// <paramref name="workDirectory"/>, the temp directory, or wherever a killed server ran); writes one line to
    /// <paramref name="log"/> when there was something. A live owner's servers (a concurrent run, a test process) are
    /// left alone.
    /// </summary>
    /// <returns>The pids killed and the directories deleted.</returns>
    public static (IReadOnlyList<int> Pids, IReadOnlyList<string> Directories) Reap(TextWriter log, string? workDirectory)
    {
        var orphans = Processes().Where(p => p.Owner is { } owner && owner != Environment.ProcessId && !IsAlive(owner)).ToList();
        var directories = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in orphans)
        {
            if (p.Directory is not null && DirectoryName().IsMatch(Path.GetFileName(p.Directory)))
            {
                directories.Add(p.Directory);
            }

            Kill(p.Pid);
        }

        foreach (var root in new[] { workDirectory, Path.GetTempPath() }.OfType<string>().Distinct())
        {
            try
            {
                foreach (var dir in Directory.EnumerateDirectories(root, "fastbroker-compare-*"))
                {
                    if (DirectoryName().Match(Path.GetFileName(dir)) is { Success: true } m && OwnerOf(m) is { } owner && owner != Environment.ProcessId && !IsAlive(owner))
                    {
                        directories.Add(Path.GetFullPath(dir));
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        // SIGKILL cannot be ignored: each is gone (or a zombie nobody waits for) within moments.
        var deadline = Stopwatch.GetTimestamp() + (10 * Stopwatch.Frequency);
        while (orphans.Any(p => IsAlive(p.Pid)) && Stopwatch.GetTimestamp() < deadline)
        {
            Thread.Sleep(20);
        }

        foreach (var dir in directories)
        {
            ServerProcess.DeleteDirectory(dir);
        }

        if (orphans.Count > 0 || directories.Count > 0)
        {
            var owners = orphans.Select(p => p.Owner!.Value).Concat(directories.Select(d => OwnerOf(DirectoryName().Match(Path.GetFileName(d))) ?? 0)).Where(o => o != 0).Distinct().Order();
            log.WriteLine($"reaped {orphans.Count} server process(es) ({string.Join(", ", orphans.Select(p => $"{p.Name} {p.Pid}"))}) and {directories.Count} directory(ies) left by earlier runs whose tool process is gone (pid {string.Join(", ", owners)})");
        }

        return ([.. orphans.Select(p => p.Pid)], [.. directories]);
    }

    /// <summary>True while <paramref name="pid"/> runs (a zombie has exited: only its parent's wait is missing).</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            return text[(text.LastIndexOf(')') + 2)..].Split(' ')[0] != "Z";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void Kill(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            p.Kill();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }
    }

    /// <summary>Every other live process that carries one of this tool's marks, with the owner and directory it names.</summary>
    private static List<Marked> Processes()
    {
        var result = new List<Marked>();
        foreach (var procDir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(procDir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId || !IsAlive(pid))
            {
                continue;
            }

            var commandLine = Read(Path.Combine(procDir, "cmdline"));
            var environment = Read(Path.Combine(procDir, "environ"));
            string? cwd = null;
            try
            {
                cwd = new DirectoryInfo(Path.Combine(procDir, "cwd")).LinkTarget;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }

            string? directory = Variable(environment, DirectoryVariable);
            int? owner = int.TryParse(Variable(environment, OwnerVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var o) ? o : null;
            // The working directory (every ServerProcess), else an argument naming a path in it (redis' --dir, nats'
            // -c, fastbroker serve's --data).
            foreach (var text in new[] { cwd ?? "" }.Concat(commandLine.Split('\0')))
            {
                if (DirectoryName().Match(text) is { Success: true } m && text.StartsWith('/'))
                {
                    owner ??= OwnerOf(m);
                    directory ??= text[..(m.Index + m.Length)];
                }
            }

            if (NodeName().Match(commandLine) is { Success: true } node)
            {
                owner ??= int.Parse(node.Groups[1].Value, CultureInfo.InvariantCulture);
            }

            if (owner is not null || directory is not null)
            {
                var name = commandLine.Split('\0', 2)[0];
                result.Add(new Marked(pid, Path.GetFileName(name.Length > 0 ? name : "?"), commandLine.Replace('\0', ' '), owner, directory));
            }
        }

        return result;
    }

    private static int? OwnerOf(Match directoryName) =>
        int.TryParse(directoryName.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;

    private static string? Variable(string environment, string name)
    {
        foreach (var entry in environment.Split('\0'))
        {
            if (entry.Length > name.Length && entry[name.Length] == '=' && entry.StartsWith(name, StringComparison.Ordinal))
            {
                return entry[(name.Length + 1)..];
            }
        }

        return null;
    }

    private static string Read(string path)
    {
        try
        {
            return Encoding.UTF8.GetString(File.ReadAllBytes(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    /// <summary>fastbroker-compare-&lt;system&gt;-&lt;owner pid&gt;-&lt;32 hex&gt;.</summary>
    [GeneratedRegex(@"fastbroker-compare-[a-z]+(?:-[a-z]+)*?-([0-9]+)-[0-9a-f]{32}")]
    private static partial Regex DirectoryName();

    /// <summary>RabbitMQ's node name, fbcompare&lt;owner pid&gt;x&lt;port&gt;@.</summary>
    [GeneratedRegex(@"fbcompare([0-9]+)x[0-9]+@")]
    private static partial Regex NodeName();

    private sealed record Marked(int Pid, string Name, string CommandLine, int? Owner, string? Directory);
}
