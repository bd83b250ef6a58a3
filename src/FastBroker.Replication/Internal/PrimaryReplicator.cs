using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Threading;

namespace FastBroker.Replication.Internal;

/// <summary>
/// The primary's replicator: one link to the standby at a time. Its sender thread follows every persistent topic's
/// durable end with a journal reader (the "replicator sequence" of each topic) and ships runs of whole records
/// straight from the mapping; its ack thread feeds the standby's positions to the <see cref="ReplicationGate"/>,
/// which releases the confirmations waiting for them. A standby that connects behind (or empty) gets the backlog
/// first, from the same readers, while the primary keeps accepting publishes.
/// </summary>
internal sealed class PrimaryReplicator : IDisposable
{
    private readonly Broker _broker;
    private readonly ReplicationGate _gate;
    private readonly NodeState _state;
    private readonly ReplicationOptions _options;
    private readonly Action<long> _sawHigherEpoch;
    private readonly AsyncSignal _wake = new();
    private readonly object _linkGate = new();
    private StandbyLink? _link;
    private bool _disposed;
    private long _retentionPassed;

    public PrimaryReplicator(Broker broker, ReplicationGate gate, NodeState state, ReplicationOptions options, Action<long> sawHigherEpoch)
    {
        _broker = broker;
        _gate = gate;
        _state = state;
        _options = options;
        _sawHigherEpoch = sawHigherEpoch;
        gate.Wake = _wake.Set;
        gate.ShipNow = topic => Volatile.Read(ref _link)?.TryShipNow(topic) ?? false;
        gate.PollAcks = () => Volatile.Read(ref _link)?.PollAcks() ?? false;
        gate.AckPollTicks = (long)(options.AckPoll.TotalSeconds * Stopwatch.Frequency);
    }

    public long Epoch => _state.Epoch;

    /// <summary>The current link's view (null when no standby is connected).</summary>
    public StandbyLink? Link => Volatile.Read(ref _link);

    /// <summary>
    /// Links ended because retention deleted records of a topic the standby had not been sent (it held retention back
    /// by more than <see cref="ReplicationOptions.MaxRetentionHoldBytes"/>, or they went before its link began to send
    /// them); each restarts the standby's copy of that topic. Grows only.
    /// </summary>
    public long RetentionPassed => Volatile.Read(ref _retentionPassed);

    internal Broker Broker => _broker;

    internal ReplicationGate Gate => _gate;

    internal ReplicationOptions Options => _options;

    internal AsyncSignal WakeSignal => _wake;

    /// <summary>Tests: called on a link's sender thread with the path (relative, '/'-separated) of each state file it sends whole.</summary>
    internal Action<string>? StateFileSent { get; set; }

    /// <summary>
    /// The period within which the heartbeats' checks read every state file, whatever the change marks say (the
    /// fallback for a change nothing signalled): 30 s. The rolling pass reads them a slice per heartbeat, each pass
    /// within half of it (<see cref="StateScan.Plan"/>).
    /// </summary>
    internal TimeSpan StateRescanInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Tests: called on a link's sender thread with the path (relative, '/'-separated) of each state file it reads.</summary>
    internal Action<string>? StateFileRead { get; set; }

    /// <summary>Tests: called on a link's sender thread at the end of each heartbeat's check of the state files, with what it cost.</summary>
    internal Action<StateCheckCost>? StateChecked { get; set; }

    /// <summary>A standby said hello (listener thread): answer and start streaming to it, replacing any older link.</summary>
    public void Attach(Socket socket, Hello hello)
    {
        if (hello.Epoch > _state.Epoch)
        {
            // It has followed (or been) a newer primary: we are the stale one.
            Refuse(socket, $"standby '{hello.NodeId}' is at epoch {hello.Epoch}, newer than this primary's {_state.Epoch}");
            _sawHigherEpoch(hello.Epoch);
            return;
        }

        StandbyLink? old;
        var link = new StandbyLink(this, socket, hello);
        lock (_linkGate)
        {
            if (_disposed)
            {
                socket.Dispose();
                return;
            }

            old = _link;
            _link = link;
        }

        old?.Dispose();
        link.Start();
    }

    internal void OnLinkDown(StandbyLink link, string reason)
    {
        lock (_linkGate)
        {
            if (!ReferenceEquals(_link, link))
            {
                return;
            }

            _link = null;
        }

        _gate.SetStandbyAttached(false);
        _options.Log?.Invoke($"replication: standby '{link.StandbyId}' disconnected: {reason}");

        // Its threads and journal readers (mapped segments) go too; off this thread, which is one of the two it joins.
        ThreadPool.UnsafeQueueUserWorkItem(static l => l.Dispose(), link, preferLocal: false);
    }

    internal void OnHigherEpoch(long epoch) => _sawHigherEpoch(epoch);

    internal void CountRetentionPassed() => Interlocked.Increment(ref _retentionPassed);

    internal string NodeHistory() => _state.FormatHistory();

    internal long? DivergenceOffset(Hello hello, string topic) => _state.DivergenceOffset(hello.Epoch, NodeState.ParseHistory(hello.History), topic);

    public void Dispose()
    {
        StandbyLink? link;
        lock (_linkGate)
        {
            _disposed = true;
            link = _link;
            _link = null;
        }

        link?.Dispose();
        _gate.SetStandbyAttached(false);
    }

    private void Refuse(Socket socket, string reason)
    {
        try
        {
            var f = new FrameBuffer(256);
            f.Begin(FrameKind.Refuse).I64(_state.Epoch).U8((byte)NodeRole.Primary).Str(reason).End();
            f.SendTo(socket);
        }
        catch (SocketException)
        {
        }
        finally
        {
            socket.Dispose();
        }
    }
}
