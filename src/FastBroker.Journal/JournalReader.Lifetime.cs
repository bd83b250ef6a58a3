using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

// A reader's lifetime: disposal, the finalizer of one dropped undisposed, and parking against retention.
public sealed partial class JournalReader
{
    /// <summary>
    /// What the journal's lists hold of this reader (<see cref="JournalLog.Unregister"/>): a short weak reference, cleared
    /// once the reader is unreachable, so an undisposed reader neither stays alive nor pins retention because of them.
    /// </summary>
    internal WeakReference<JournalReader> Registration { get; }

    /// <summary>
    /// Releases what a reader dropped without <see cref="Dispose"/> held (an embedded caller that forgot it, a session
    /// ended by an exception path): the journal's lists hold it weakly, so it is collected like any object, and then its
    /// segment goes (the mapping, and a deleted file's blocks) and its retention floor with it. Runs on the finalizer
    /// thread, when no other thread can reach the reader.
    /// </summary>
    ~JournalReader() => Close();

    /// <summary>
    /// Releases the segment this reader holds (and its retention floor, if it pins). A reader dropped undisposed is
    /// released so when the garbage collector finalizes it; until then it keeps its segment and its floor.
    /// </summary>
    public void Dispose()
    {
        Close();
        GC.SuppressFinalize(this);
    }

    /// <summary>Dispose's work, also the finalizer's: leaves the journal's lists and releases the segment. Idempotent.</summary>
    private void Close()
    {
        if (PinsRetention)
        {
            _log.Unpin(this);
        }

        _log.Unregister(this);
        Segment? segment;
        lock (_gate)
        {
            segment = _segment;
            _segment = null;
        }

        segment?.Release();
    }

    /// <summary>
    /// Retention has retired segments (out of the journal, files unlinked): if this reader is parked in one, it lets go
    /// of it now, so the mapping goes and the file's blocks are freed. Any thread but the reader's (retention's).
    /// </summary>
    /// <remarks>
    /// The owner un-parks under <see cref="_gate"/> before it touches <see cref="_segment"/> or the mapping, and parks
    /// under it after its last touch; so a parked reader seen here holds no span, and the segment taken away here is
    /// not the one it goes on with: it finds <see cref="_segment"/> null and re-locates (as after skipping).
    /// </remarks>
    internal void ReleaseRetiredSegment()
    {
        Segment? retired;
        lock (_gate)
        {
            retired = _segment;
            if (!_parked || retired is null || !retired.IsRetired)
            {
                return;
            }

            _segment = null;
        }

        retired.Release();
    }

    /// <summary>
    /// Parks (no span outstanding); a deleted segment the reader is in goes now, for a retention pass that ran while
    /// the reader was reading could not take it.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ParkSlow()
    {
        Segment? retired = null;
        lock (_gate)
        {
            _parked = true;
            if (_segment is { IsRetired: true } segment)
            {
                retired = segment;
                _segment = null;
            }
        }

        retired?.Release();
    }

    /// <summary>Before the owner touches the segment again: from here on retention leaves it alone.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Unpark()
    {
        lock (_gate)
        {
            _parked = false;
        }
    }
}
