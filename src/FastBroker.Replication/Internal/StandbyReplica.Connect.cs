using System.Diagnostics;
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
    /// Connects to the primary: resolves its host name (again at every attempt, so a primary whose name moved is
    /// followed) and tries each address it resolves to. A peer that does not answer (a host gone without a trace, a full
    /// backlog) holds the attempt for up to <see cref="ReplicationOptions.ConnectTimeout"/> (1 s by default), resolving
    /// included; <see cref="Dispose"/> ends it at once, so a promotion does not wait for it. False with the reason when
    /// there is no link to follow: it begins with "cannot connect" when the peer cannot be reached, a host name that does
    /// not resolve included.
    /// </summary>
    private bool TryConnect(PeerAddress primary, [NotNullWhen(true)] out Socket? socket, out string failure)
    {
        Interlocked.Increment(ref _connectsBegun);
        var timeout = _options.EffectiveConnectTimeout;
        var started = Stopwatch.GetTimestamp();
        socket = null;
        IPAddress[] addresses;
        try
        {
            using var resolving = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            resolving.CancelAfter(timeout);
            var resolved = primary.ResolveAsync(resolving.Token);
            addresses = resolved.IsCompletedSuccessfully ? resolved.Result : resolved.AsTask().GetAwaiter().GetResult();
        }
        catch (SocketException ex)
        {
            failure = $"cannot connect to the primary at {primary}: {ex.Message}";
            return false;
        }
        catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
        {
            failure = $"cannot connect to the primary at {primary}: the host name '{primary.Host}' did not resolve within the connect timeout ({timeout.TotalMilliseconds:0.###} ms)";
            return false;
        }
        catch (OperationCanceledException)
        {
            failure = "stopping";
            return false;
        }

        for (var i = 0; i < addresses.Length; i++)
        {
            var endPoint = new IPEndPoint(addresses[i], primary.Port);
            var left = timeout - Stopwatch.GetElapsedTime(started);
            try
            {
                socket = Wire.Connect(endPoint, left > TimeSpan.Zero ? left : TimeSpan.Zero, _stop.Token);
                failure = "";
                return true;
            }
            catch (SocketException ex) when (i < addresses.Length - 1 && ex.SocketErrorCode != SocketError.TimedOut)
            {
                // the next address
            }
            catch (SocketException ex)
            {
                failure = primary.IsName
                    ? $"cannot connect to the primary at {primary} ({endPoint}): {ex.SocketErrorCode}"
                    : $"cannot connect to the primary at {primary}: {ex.SocketErrorCode}";
                return false;
            }
            catch (OperationCanceledException)
            {
                failure = "stopping";
                return false;
            }
        }

        failure = "stopping"; // not reached: ResolveAsync returns at least one address
        return false;
    }

    private void CancelConnect() => _stop.Cancel();
}
