using System.Runtime.InteropServices;

namespace FastBroker.Compare.Servers;

/// <summary>
/// The servers this process has started and not yet stopped, with how to kill each: Ctrl-C and process exit kill
/// what is left (a scenario that throws disposes its servers on the way out; these hooks cover the rest).
/// </summary>
internal static class ChildProcesses
{
    private static readonly Dictionary<object, Action> s_live = [];
    private static int s_hooked;
    private static PosixSignalRegistration[]? s_signals;

    /// <summary>Remembers <paramref name="kill"/> for <paramref name="owner"/> until <see cref="Remove"/>.</summary>
    public static void Add(object owner, Action kill)
    {
        if (Interlocked.Exchange(ref s_hooked, 1) == 0)
        {
            // Ctrl-C, kill (SIGTERM) and a closed terminal: kill the servers, then let the signal end this process.
            s_signals = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT }.Select(signal => PosixSignalRegistration.Create(signal, _ => KillAll()))];
            AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        }

        lock (s_live)
        {
            s_live[owner] = kill;
        }
    }

    /// <summary>Forgets <paramref name="owner"/> (it has been stopped).</summary>
    public static void Remove(object owner)
    {
        lock (s_live)
        {
            s_live.Remove(owner);
        }
    }

    /// <summary>Kills every server still listed.</summary>
    public static void KillAll()
    {
        Action[] kills;
        lock (s_live)
        {
            kills = [.. s_live.Values];
        }

        foreach (var kill in kills)
        {
            try
            {
                kill();
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
            {
            }
        }
    }
}
