using System.Diagnostics;
using FastBroker.Replication;
using FastBroker.Server;

namespace FastBroker.Cli.Commands;

/// <summary><c>fastbroker serve --peer …</c>: one node of a failover pair, until SIGINT, SIGTERM or SIGHUP.</summary>
internal static class PairNode
{
    public static async Task<int> RunAsync(BrokerOptions brokerOptions, ServerOptions serverOptions, ReplicationOptions options, int adminPort, bool quiet, long started, CancellationToken stop)
    {
        ReplicatedNode node;
        try
        {
            node = await ReplicatedNode.StartAsync(brokerOptions, serverOptions, options, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or BrokerException)
        {
            Console.Error.WriteLine($"fastbroker: cannot start the pair node: {ex.Message}");
            return 1;
        }

        await using (node.ConfigureAwait(false))
        {
            AdminHttpServer? admin = null;
            if (adminPort >= 0)
            {
                try
                {
                    admin = await node.StartAdminAsync(serverOptions.Host, adminPort, CancellationToken.None).ConfigureAwait(false);
                }
                catch (System.Net.Sockets.SocketException ex)
                {
                    Console.Error.WriteLine($"fastbroker: cannot listen on admin port {adminPort}: {ex.Message}");
                    return 1;
                }
            }

            var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            Console.WriteLine($"fastbroker node '{node.NodeId}' replication on {node.ReplicationEndPoint}, peer {options.Peer}, witness {options.Witness ?? "none"}{(admin is null ? "" : $", admin http://{admin.EndPoint}/status")} — ready in {ms:F0} ms (role decided in the background)");
            Console.Out.Flush();
            try
            {
                await Task.Delay(Timeout.Infinite, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            if (!quiet)
            {
                // As a lone serve says it: a script or an operator waiting for the stop reads the same lines.
                Console.Error.WriteLine("fastbroker: shutting down (draining confirmations, flushing journals)");
            }

            if (admin is not null)
            {
                await admin.DisposeAsync().ConfigureAwait(false);
            }
        }

        if (!quiet)
        {
            Console.Error.WriteLine("fastbroker: stopped");
        }

        return 0;
    }
}
