using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Admin queries and round trips.</summary>
public sealed partial class BrokerClient
{
    /// <summary>Asks the server an ADMIN query and returns its JSON answer (schema: the server's admin documentation).</summary>
    /// <param name="query">What to ask.</param>
    /// <param name="argument">Topic name or pattern (empty = all, where the query allows it).</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="BrokerClientException">The server refused (or did not grant the Admin feature: <see cref="ErrorCode.UnexpectedFrame"/>).</exception>
    public async ValueTask<string> AdminAsync(AdminQuery query, string argument = "", CancellationToken cancellationToken = default)
    {
        if (query is AdminQuery.None or > AdminQuery.ServerStats)
        {
            throw new ArgumentOutOfRangeException(nameof(query), query, "Not a query.");
        }

        if ((Features & ProtocolFeatures.Admin) == 0)
        {
            ThrowHelper.ThrowNotGranted(ProtocolFeatures.Admin);
        }

        ThrowIfFailed();
        var op = new ControlOp(ControlKind.Admin, 0, awaited: true) { Query = query, Text = Utf8Names.Encode(argument ?? string.Empty, nameof(argument), allowEmpty: true) };
        QueueControl(op);
        await op.Completion!.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return op.Result ?? string.Empty;
    }

    /// <summary>Sends a PING and returns the round-trip time to the PONG.</summary>
    public async ValueTask<TimeSpan> PingAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfFailed();
        var op = new ControlOp(ControlKind.Ping, 0, awaited: true);
        QueueControl(op);
        var ticks = await op.Completion!.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return TimeSpan.FromTicks((long)ticks);
    }
}
