// Client side of tools/fd-count.sh: connections a server's descriptors are counted under.
//   hold <host:port> <n> <topic>  connects n clients, each subscribed to <topic> from its latest offset, prints
//                                 "held n", keeps them until a line (or end of input) on stdin, closes them all and
//                                 prints "released".
//   flood <host:port> <max>       opens raw TCP connections (no HELLO) until the server closes one (it turns readable:
//                                 the server sends nothing before a HELLO) or <max> are open, prints how many it opened
//                                 and when the first closed one was opened, closes them all, then connects a client
//                                 (30 s connect timeout) and publishes one message: prints "served offset N".
// Usage: dotnet run -c Release tools/fd-clients.cs -- hold 127.0.0.1:7400 100 fd.topic
#:project ../src/FastBroker.Client/FastBroker.Client.csproj
#:property TargetFramework=net10.0
using System.Net;
using System.Net.Sockets;
using FastBroker.Client;

var endpoint = args[1];
var options = BrokerClientOptions.Default with { Endpoints = [endpoint], ConnectTimeout = TimeSpan.FromSeconds(30) };
switch (args[0])
{
    case "hold":
        {
            var n = int.Parse(args[2]);
            var clients = new List<BrokerClient>();
            var subscriptions = new List<ClientSubscription>();
            for (var i = 0; i < n; i++)
            {
                var client = await BrokerClient.ConnectAsync(options);
                clients.Add(client);
                subscriptions.Add(await client.CreateSubscriptionAsync(args[3]));
            }

            Console.WriteLine($"held {clients.Count}");
            await Console.In.ReadLineAsync();
            foreach (var s in subscriptions)
            {
                await s.DisposeAsync();
            }

            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }

            Console.WriteLine("released");
            break;
        }

    case "flood":
        {
            var max = int.Parse(args[2]);
            var parts = endpoint.Split(':');
            var target = new IPEndPoint(IPAddress.Parse(parts[0]), int.Parse(parts[1]));
            var sockets = new List<Socket>();
            var firstClosed = -1;
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (sockets.Count < max && firstClosed < 0)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                await socket.ConnectAsync(target, deadline.Token);

                // Let the server accept before looking: a closed socket is the one the server had no descriptor for.
                for (var wait = 0; wait < 20 && firstClosed < 0; wait++)
                {
                    firstClosed = sockets.FindIndex(ClosedByServer);
                    if (firstClosed < 0 && wait < 19)
                    {
                        await Task.Delay(1);
                    }
                }
            }

            Console.WriteLine($"opened {sockets.Count}, first closed by the server: #{firstClosed + 1} (0 = none)");
            foreach (var s in sockets)
            {
                s.Dispose();
            }

            await using var client = await BrokerClient.ConnectAsync(options);
            Console.WriteLine($"served offset {await client.PublishAsync("fd.after", "served"u8)}");
            break;
        }

    default:
        Console.Error.WriteLine("usage: hold <host:port> <n> <topic> | flood <host:port> <max>");
        return 64;
}

return 0;

static bool ClosedByServer(Socket socket)
{
    try
    {
        return socket.Poll(0, SelectMode.SelectRead);
    }
    catch (SocketException)
    {
        return true;
    }
}
