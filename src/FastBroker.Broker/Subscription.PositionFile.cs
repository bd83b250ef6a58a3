using FastBroker.Engine;

namespace FastBroker;

// A durable subscription's position file removed while it is subscribed (an operator trying to start it anew): found by
// the broker timer's check or when the subscription closes, and written again at its path.
public sealed partial class Subscription
{
    private readonly object _positionCheckLock = new(); // the timer's check against the close's
    private string? _positionFileLogged; // under _positionCheckLock: the last line about a removed file (not said again at each check)

    /// <summary>
    /// The broker's timer (once per <see cref="Broker.StateFileCheckInterval"/>, a second) and the close: when the
    /// position file was removed (or renamed away) while subscribed (one syscall, a <c>readlink</c> on Linux; none per commit), writes the
    /// positions again at its path and goes on in that file (<see cref="PositionStore.RewriteIfRemoved()"/>), so no commit
    /// made since is lost; a file put at the path meanwhile is left as it is. Logged once per outcome; never throws.
    /// </summary>
    internal void CheckPositionFile(bool closing)
    {
        if (_positions is null)
        {
            return;
        }

        lock (_positionCheckLock)
        {
            var name = Options.DurableName!;
            var path = _positions.Path;
            var dropped = closing ? "are dropped now that it closed" : "are dropped when it closes";
            var what = $"subscription '{name}': its position file {path} was removed while it was subscribed";
            string line;
            try
            {
                var check = _positions.RewriteIfRemoved(out var renamedTo, out var syncFailure);
                if (renamedTo is not null)
                {
                    what = $"subscription '{name}': its position file {path} was renamed to {renamedTo} (that file is left as it is) while it was subscribed";
                }

                switch (check)
                {
                    case PositionFileCheck.AtItsPath:
                        return;
                    case PositionFileCheck.WrittenAgain:
                        _positionFileLogged = null;
                        _broker.Log($"{what}: written again at that path with its committed positions{(closing ? " as it closed" : "")}, so no commit is lost; a durable subscription starts anew from its start position only when its position file is removed while no subscription holds its name (or while the broker is stopped){MappedStateFile.DescribeSupersededSyncFailure(syncFailure)}");
                        return;
                    case PositionFileCheck.AnotherFileAtItsPath:
                        line = $"{what}, and another file is at that path now: that file is left as it is and is what the next subscription under that name opens; the positions it committed since the removal went to the removed file and {dropped}";
                        break;
                    default:
                        line = $"{what}, and the data directory is gone: nothing is written there; the positions it committed since the removal went to the removed file and {dropped}";
                        break;
                }
            }
            catch (Exception e)
            {
                line = $"{what}, and it could not be written again ({e.GetType().Name}: {e.Message}): {(closing ? "the positions it committed since the removal are dropped now that it closed, and the next subscription under that name finds no position file and starts anew" : "it goes on in the removed file and tries again at the next check")}";
            }

            if (closing || line != _positionFileLogged)
            {
                _positionFileLogged = line;
                _broker.Log(line);
            }
        }
    }
}
