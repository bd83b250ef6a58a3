using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace FastBroker.Bench.Pair;

/// <summary>What a pair node's admin <c>GET /status</c> says (the fields the benchmarks wait on), plus the raw JSON.</summary>
/// <param name="Role">starting, standby, primary or fenced.</param>
/// <param name="Epoch">The epoch it serves or follows.</param>
/// <param name="StandbyAttached">Primary only: whether a standby is attached (null on a standby).</param>
/// <param name="StandbyTopics">Primary only: per topic, the primary's head and the standby's durable position.</param>
/// <param name="Json">The whole document, for error messages.</param>
/// <param name="WitnessRecordsBehind">
/// Primary with a witness only: the witness records its standby behind (it confirmed publishes as local the standby
/// lacks), so the standby would not be promoted.
/// </param>
internal sealed record NodeStatus(string Role, long Epoch, bool? StandbyAttached, IReadOnlyDictionary<string, (long Head, long Durable)> StandbyTopics, string Json, bool WitnessRecordsBehind = false)
{
    public bool IsPrimary => Role == "primary";

    public bool IsStandby => Role == "standby";

    /// <summary>GET /status of the node whose admin endpoint is <paramref name="admin"/>; null if it does not answer (within 2 s).</summary>
    public static async Task<NodeStatus?> GetAsync(string admin, CancellationToken cancellationToken)
    {
        var body = await GetAsync(admin, "/status", cancellationToken).ConfigureAwait(false);
        return body is null ? null : Parse(body);
    }

    public static NodeStatus Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        bool? attached = null;
        var behind = false;
        var topics = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        if (root.TryGetProperty("standby", out var standby))
        {
            attached = standby.GetProperty("attached").GetBoolean();
            behind = standby.TryGetProperty("witnessRecordsBehind", out var b) && b.GetBoolean();
            if (standby.TryGetProperty("topics", out var list))
            {
                foreach (var t in list.EnumerateArray())
                {
                    topics[t.GetProperty("topic").GetString()!] = (t.GetProperty("head").GetInt64(), t.GetProperty("durable").GetInt64());
                }
            }
        }

        return new NodeStatus(root.GetProperty("role").GetString()!, root.GetProperty("epoch").GetInt64(), attached, topics, json, behind);
    }

    /// <summary>One HTTP/1.1 GET with <c>Connection: close</c>; the body on 200, null if unreachable or not 200.</summary>
    private static async Task<string?> GetAsync(string endpoint, string path, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            var colon = endpoint.LastIndexOf(':');
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(endpoint[..colon], int.Parse(endpoint[(colon + 1)..], CultureInfo.InvariantCulture), timeout.Token).ConfigureAwait(false);
            var request = Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n");
            await socket.SendAsync(request, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            using var response = new MemoryStream();
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).ConfigureAwait(false)) > 0)
            {
                response.Write(buffer, 0, n);
            }

            var text = Encoding.UTF8.GetString(response.GetBuffer(), 0, (int)response.Length);
            var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            return headEnd > 0 && text.StartsWith("HTTP/1.1 200", StringComparison.Ordinal) ? text[(headEnd + 4)..] : null;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (SocketException)
        {
            return null;
        }
    }
}
