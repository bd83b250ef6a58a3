namespace FastBroker.Engine;

// The group's state file removed while the group is open (an operator trying to start the group anew): found by the
// timer's check or when the group closes, and written again at its path.
internal sealed partial class WorkQueueGroup
{
    private long _nextStateCheckMs; // NowMs of the timer's next check
    private string? _stateFileLogged; // what the last line about a removed state file said (not said again at each check)

    /// <summary>
    /// Timer: once per <see cref="Broker.StateFileCheckInterval"/> (a second), checks that the state file is still at
    /// its path (one <c>readlink</c> on Linux; none per ack), so acks made after a removal reach a file within about that.
    /// </summary>
    private void CheckStateFileOnTimer()
    {
        var interval = (long)_broker.StateFileCheckInterval.TotalMilliseconds;
        var now = NowMs;
        if (interval < 0 || now < Volatile.Read(ref _nextStateCheckMs))
        {
            return;
        }

        lock (_gate)
        {
            if (_disposed || now < _nextStateCheckMs)
            {
                return;
            }

            _nextStateCheckMs = now + interval;
            CheckStateFileLocked(closing: false);
        }
    }

    /// <summary>
    /// Under the gate, no store in between: when the state file was removed or renamed away while the group was open
    /// (<see cref="GroupAckStore.WasRemoved"/>), writes the group's state again at its path and goes on in it, so no ack
    /// made since is lost; a group open for the broker's whole life is not started anew by a removal (only one removed
    /// while the broker is stopped is). A file put at the path meanwhile is left as it is. Logged once per outcome; never
    /// throws (the close calls it).
    /// </summary>
    private void CheckStateFileLocked(bool closing)
    {
        if (!_store.WasRemoved())
        {
            return;
        }

        var path = _stateFile.Path;
        var renamedTo = _store.RenamedTo;
        var what = $"{Topic.Name}: group '{Name}': its state file {path} was {(renamedTo is null ? "removed" : $"renamed to {renamedTo} (that file is left as it is)")} while the group was open";
        string line;
        try
        {
            if (_store.Rewrite(out var syncFailure))
            {
                _store.RequestSync();
                Topic.Replication?.GroupStateChanged(_stateFile); // the standby, told the file is gone, gets it whole again
                _stateFileLogged = null;
                _broker.Log($"{what}: written again at that path with the group's state (ack floor {_store.Floor}){(closing ? " as the group closed" : "")}, so no ack is lost; a group starts anew from its start position only when its state file is removed while the broker is stopped{MappedStateFile.DescribeSupersededSyncFailure(syncFailure)}");
                return;
            }

            line = File.Exists(path)
                ? $"{what}, and another file is at that path now: that file is left as it is and is what the group's next open reads; the acks the group made since the removal went to the removed file and {(closing ? "are dropped now that it closed" : "are dropped when it closes")}"
                : $"{what}, and its topic's directory is gone: nothing is written there; the acks the group made since the removal went to the removed file and {(closing ? "are dropped now that it closed" : "are dropped when it closes")}";
        }
        catch (Exception e)
        {
            line = $"{what}, and it could not be written again ({e.GetType().Name}: {e.Message}): {(closing ? "the acks the group made since the removal are dropped now that it closed, and its next open finds no state file and starts the group from its start position" : "the group goes on in the removed file and tries again at the next check")}";
        }

        if (closing || line != _stateFileLogged)
        {
            _stateFileLogged = line;
            _broker.Log(line);
        }
    }
}
