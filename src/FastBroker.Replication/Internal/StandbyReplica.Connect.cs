using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace FastBroker.Replication.Internal;

// The first step of a link: the connect to the primary, which Dispose ends at once.
internal sealed partial class StandbyReplica
{
    /// <summary>Cancelled by <see cref="Dispose"/> (a promotion, the node stopping): ends a connect under way.</summary>
    private readonly CancellationTokenSource _stop = new();
    private long _connectsBegun;

    /// <summary>How many connects to the primary <see cref="Run"/> has begun (tests).</summary>
    internal long ConnectsBegun => Interlocked.Read(ref _connectsBegun);

    /// <summary>
    /// Connects to the primary. A peer that does not answer (a host gone without a trace, a full backlog) holds the
    /// connect for up to <see cref="ReplicationOptions.ConnectTimeout"/> (1 s); <see cref="Dispose"/> ends it at once,
    /// so a promotion does not wait for it. False with the reason when there is no link to follow.
    /// </summary>
    private bool TryConnect(IPEndPoint primary, [NotNullWhen(true)] out Socket? socket, out string failure)
    {
        Interlocked.Increment(ref _connectsBegun);
        try
        {
            socket = Wire.Connect(primary, _options.ConnectTimeout, _stop.Token);
            failure = "";
            return true;
        }
        catch (SocketException ex)
        {
            failure = $"cannot connect to the primary at {primary}: {ex.SocketErrorCode}";
        }
        catch (OperationCanceledException)
        {
            failure = "stopping";
        }

        socket = null;
        return false;
    }

    private void CancelConnect() => _stop.Cancel();
}
