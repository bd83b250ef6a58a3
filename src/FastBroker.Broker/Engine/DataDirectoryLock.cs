using System.Globalization;
using FastBroker.Journal;
using FastBroker.Storage;

namespace FastBroker.Engine;

/// <summary>
/// The lock a broker holds on its data directory: an exclusive flock on <c>broker.lock</c> in it (FileShare.None, the
/// lock each journal takes on its <c>journal.lock</c>), taken before anything in the directory is read or written and
/// held until the broker is disposed, so that a second broker on the directory, in this process or another, is refused
/// at once instead of writing the same state files (positions, groups' state, producers' checkpoint) and removing the
/// other's files in creation as leftovers. A failover pair's node takes it once at its start and holds it through every
/// role, standby copy and broker alike. The kernel releases it with the process that holds it (a <c>kill -9</c> leaves
/// no stale lock), and the file is never deleted: removing it on close would let an opener lock a file another path no
/// longer leads to.
/// </summary>
internal sealed class DataDirectoryLock : IDisposable
{
    /// <summary>The lock file's name in the data directory.</summary>
    internal const string FileName = "broker.lock";

    private const int EAgain = 11; // EWOULDBLOCK from flock(LOCK_EX | LOCK_NB): another open file holds the lock
    private const int SharingViolation = unchecked((int)0x80070020); // Windows' answer to FileShare.None held elsewhere

    private readonly FileStream _file;

    private DataDirectoryLock(string directory, FileStream file)
    {
        Directory = directory;
        _file = file;
    }

    /// <summary>The data directory (a full path).</summary>
    public string Directory { get; }

    /// <summary>
    /// Takes the lock on <paramref name="directory"/> (created if need be), or throws at once if it is held: no wait.
    /// </summary>
    /// <exception cref="BrokerException">
    /// <see cref="BrokerErrorCode.ResourceExhausted"/>: the lock is held (another broker has the directory open, in this
    /// process or another; the message names the directory and the holding process when <c>/proc/locks</c> tells it),
    /// or the lock file cannot be opened for want of descriptors or space; <see cref="BrokerErrorCode.StorageError"/>:
    /// it cannot be opened for another reason (permissions, an I/O error).
    /// </exception>
    public static DataDirectoryLock Acquire(string directory)
    {
        directory = Path.GetFullPath(directory);
        var path = Path.Combine(directory, FileName);
        try
        {
            System.IO.Directory.CreateDirectory(directory);
            return new DataDirectoryLock(directory, new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException e) when (e.HResult is EAgain or SharingViolation)
        {
            throw new BrokerException(
                BrokerErrorCode.ResourceExhausted,
                $"data directory '{directory}' is in use by another broker: its lock file '{path}' is held{Holder(path)}; one broker at a time may open a data directory",
                e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var code = ResourceShortage.Describe(e) is null ? BrokerErrorCode.StorageError : BrokerErrorCode.ResourceExhausted;
            throw new BrokerException(code, $"data directory '{directory}' cannot be locked (lock file '{path}'): {e.Message}", e);
        }
    }

    /// <summary>Releases the lock (the file stays).</summary>
    public void Dispose() => _file.Dispose();

    /// <summary>" by process N" (or "by this process", another broker instance in it), or nothing when it cannot be known.</summary>
    private static string Holder(string path)
    {
        if (JournalInspector.LockHolders(path) is not { Count: > 0 } holders)
        {
            return "";
        }

        var self = Environment.ProcessId;
        return " by " + string.Join(" and ", holders.Distinct().Select(pid => pid == self
            ? string.Create(CultureInfo.InvariantCulture, $"this process (pid {pid}: another Broker open on it)")
            : string.Create(CultureInfo.InvariantCulture, $"process {pid}{CommandOf(pid)}")));
    }

    /// <summary>" (dotnet fastbroker.dll serve …)": the holder's command line, or nothing when it cannot be read.</summary>
    private static string CommandOf(int pid)
    {
        try
        {
            var command = File.ReadAllText(Path.Combine("/proc", pid.ToString(CultureInfo.InvariantCulture), "cmdline")).Replace('\0', ' ').Trim();
            return command.Length == 0 ? "" : $" ({(command.Length > 200 ? command[..200] + "…" : command)})";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
