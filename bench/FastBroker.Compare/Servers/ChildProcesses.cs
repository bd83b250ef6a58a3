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

    private static bool s_stopping;

    /// <summary>
    /// Hooks Ctrl-C, kill (SIGTERM), a closed terminal and process exit to <see cref="KillAll"/>, once; called before any
    /// server starts (a signal that came before the hooks ended the tool and left the server running: OrphanTests).
    /// </summary>
    public static void Hook()
    {
        if (Interlocked.Exchange(ref s_hooked, 1) == 0)
        {
            // Kill the servers, then let the signal end this process.
            s_signals = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT }.Select(signal => PosixSignalRegistration.Create(signal, _ => KillAll()))];
            AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        }
    }

    /// <summary>
    /// Starts a child with <paramref name="start"/> and registers it (its constructor calls <see cref="Add"/>) as one
    /// step that <see cref="KillAll"/> cannot come between: a stop waits for a start under way and then kills what it
    /// started, and once a stop has begun nothing starts (<see cref="OperationCanceledException"/>).
    /// </summary>
    public static T Start<T>(Func<T> start)
    {
        Hook();
        lock (s_live)
        {
            if (s_stopping)
            {
                throw new OperationCanceledException("stopping: no server is started");
            }

            return start();
        }
    }

    /// <summary>Remembers <paramref name="kill"/> for <paramref name="owner"/> until <see cref="Remove"/>.</summary>
    public static void Add(object owner, Action kill)
    {
        Hook();
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
            s_stopping = true;
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
