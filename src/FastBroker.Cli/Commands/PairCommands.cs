using System.CommandLine;
using System.Net.Sockets;
using System.Text;

namespace FastBroker.Cli.Commands;

/// <summary><c>fastbroker status</c> and <c>fastbroker promote</c>: a failover pair's admin endpoints, over plain HTTP.</summary>
internal static class PairCommands
{
    public static IEnumerable<Command> Create() => [Status(), Promote()];

    private static Command Status()
    {
        var admin = new Option<string[]>("--admin") { Description = "Admin endpoint(s) (host:port) of the nodes; repeat for both nodes.", DefaultValueFactory = _ => ["127.0.0.1:7401"] };
        OptionRules.Endpoints(admin);
        var cmd = new Command("status", "Role, epoch, positions and replication lag of each node of a failover pair.") { admin };
        cmd.SetAction(async (parse, ct) =>
        {
            var failed = 0;
            foreach (var endpoint in parse.GetValue(admin)!)
            {
                var (status, body) = await RequestAsync(endpoint, "GET", "/status", ct).ConfigureAwait(false);
                if (status == 200)
                {
                    Console.WriteLine($"# {endpoint}");
                    Console.WriteLine(body.TrimEnd());
                }
                else
                {
                    Console.Error.WriteLine(Failure("status", endpoint, status, body));
                    failed++;
                }
            }

            return failed == 0 ? 0 : 1;
        });
        return cmd;
    }

    private static Command Promote()
    {
        var admin = new Option<string>("--admin") { Description = "Admin endpoint (host:port) of the standby to promote.", DefaultValueFactory = _ => "127.0.0.1:7401" };
        OptionRules.Endpoint(admin);
        var force = new Option<bool>("--force") { Description = "With a witness: take over even though the old primary confirmed publishes as local (--degrade-to-local) that this standby lacks; they are lost. Only for an old primary that will not come back." };
        var cmd = new Command("promote", "Promote a standby to primary (with a witness only once the old primary's lease has run out). Exit 0: promoted; 75: under way, not finished (check with status); 1: refused or unreachable.") { admin, force };
        cmd.SetAction(async (parse, ct) =>
        {
            var endpoint = parse.GetValue(admin)!;
            var (status, body) = await RequestAsync(endpoint, "POST", parse.GetValue(force) ? "/promote/force" : "/promote", ct).ConfigureAwait(false);
            switch (status)
            {
                case 200:
                    Console.WriteLine(body.TrimEnd()); // {"promoted":true,"epoch":…}
                    return 0;
                case 202:
                    // Taken up by the standby but not finished (asking the witness, opening its journals): it goes ahead
                    // and may still be refused. Not a failure, not a success yet.
                    Console.WriteLine(body.TrimEnd()); // {"promoted":false,"inProgress":true,"error":…}
                    Console.Error.WriteLine($"promote: {endpoint}: the promotion is under way, not finished yet; check with 'fastbroker status --admin {endpoint}' (status: promoting until it serves) or GET http://{endpoint}/primary (200 once it serves as primary)");
                    return ExitCodes.InProgress;
                default:
                    Console.Error.WriteLine(Failure("promote", endpoint, status, body));
                    return 1;
            }
        });
        return cmd;
    }

    /// <summary>
    /// The stderr line for a request that did not succeed: the node unreachable (<paramref name="status"/> 0), a refused
    /// promotion (409, the node's {"promoted":false,"error":…}), or an endpoint that is not a pair node's admin port
    /// (a lone server's: 404 for /status, 405 for /promote). Stdout is for the documents of requests that succeeded
    /// only, so a script reading it never takes an error for one.
    /// </summary>
    private static string Failure(string command, string endpoint, int status, string body) =>
        status == 0 ? $"{command}: {endpoint}: unreachable: {body}" : $"{command}: {endpoint}: HTTP {status}: {body.Trim()}";

    /// <summary>One HTTP/1.1 request, <c>Connection: close</c>; (0, error) when the node cannot be reached.</summary>
    internal static async Task<(int Status, string Body)> RequestAsync(string endpoint, string method, string path, CancellationToken ct)
    {
        try
        {
            var colon = endpoint.LastIndexOf(':');
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(35));
            await socket.ConnectAsync(endpoint[..colon], int.Parse(endpoint[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture), timeout.Token).ConfigureAwait(false);
            var request = Encoding.ASCII.GetBytes($"{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            await socket.SendAsync(request, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            var response = new MemoryStream();
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).ConfigureAwait(false)) > 0)
            {
                response.Write(buffer, 0, n);
            }

            var text = Encoding.UTF8.GetString(response.ToArray());
            var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var statusLine = text[..text.IndexOf("\r\n", StringComparison.Ordinal)].Split(' ');
            return (int.Parse(statusLine[1], System.Globalization.CultureInfo.InvariantCulture), headEnd < 0 ? "" : text[(headEnd + 4)..]);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or FormatException or ArgumentException or IndexOutOfRangeException)
        {
            return (0, ex.Message);
        }
    }
}
