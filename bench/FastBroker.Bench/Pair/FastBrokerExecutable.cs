using System.Diagnostics;
using System.Reflection;

namespace FastBroker.Bench.Pair;

/// <summary>
/// How to start the <c>fastbroker</c> executable as a child process: the file to run and the arguments that precede
/// the command (<c>dotnet fastbroker.dll serve …</c> under the dotnet host, <c>fastbroker serve …</c> for the native
/// AOT binary).
/// </summary>
/// <param name="FileName">The program to run.</param>
/// <param name="LeadingArguments">Arguments before the fastbroker command (the dll under the dotnet host).</param>
public sealed record FastBrokerExecutable(string FileName, IReadOnlyList<string> LeadingArguments)
{
    /// <summary>
    /// The executable this process runs: under the dotnet host (<see cref="Environment.ProcessPath"/> is
    /// <c>dotnet</c>) the host plus the entry assembly's dll, otherwise the process itself (the native AOT binary or
    /// the apphost).
    /// </summary>
    public static FastBrokerExecutable Current()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown");
        if (Path.GetFileNameWithoutExtension(process) != "dotnet")
        {
            return new FastBrokerExecutable(process, []);
        }

        var entry = EntryAssemblyPath();
        if (string.IsNullOrEmpty(entry))
        {
            throw new InvalidOperationException("running under the dotnet host, but the entry assembly has no file path");
        }

        return new FastBrokerExecutable(process, [entry]);
    }

    /// <summary>
    /// A given <c>fastbroker.dll</c> (run under the dotnet host: <c>DOTNET_HOST_PATH</c>, this process if it is
    /// <c>dotnet</c>, else <c>dotnet</c> from PATH) or native binary.
    /// </summary>
    public static FastBrokerExecutable FromPath(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"no fastbroker executable at '{full}'", full);
        }

        if (!full.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            return new FastBrokerExecutable(full, []);
        }

        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h)
            ? h
            : Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        return new FastBrokerExecutable(host, [full]);
    }

    /// <summary>A start description for <c>fastbroker &lt;arguments&gt;</c>, all output redirected.</summary>
    internal ProcessStartInfo StartInfo(IEnumerable<string> arguments)
    {
        var psi = new ProcessStartInfo(FileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in LeadingArguments.Concat(arguments))
        {
            psi.ArgumentList.Add(a);
        }

        return psi;
    }

    /// <inheritdoc />
    public override string ToString() => string.Join(' ', [FileName, .. LeadingArguments]);

    // Only called under the dotnet host, where the entry assembly is a dll next to the host's base directory. Built
    // from the name rather than Assembly.Location, which is empty in single-file and native AOT builds (IL3000).
    private static string? EntryAssemblyPath()
    {
        var name = Assembly.GetEntryAssembly()?.GetName().Name;
        if (name is null)
        {
            return null;
        }

        var path = Path.Combine(AppContext.BaseDirectory, name + ".dll");
        return File.Exists(path) ? path : null;
    }
}
