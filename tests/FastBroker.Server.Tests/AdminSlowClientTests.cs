using System.Net;
using System.Net.Sockets;
using System.Text;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>The admin HTTP endpoint under slow or hostile clients: a load balancer's health check must still be answered.</summary>
public class AdminSlowClientTests
{
    [Fact]
    public async Task Health_is_answered_while_slow_clients_hold_every_request_slot()
    {
        // Slowloris: 32 connections (the endpoint's limit of requests at once) that each send a byte of a request head
        // and wait. Each lasts the 5 s request timeout; an attacker that reconnects keeps the slots taken, and the 33rd
        // connection, the load balancer's GET /health, used to be closed at accept without an answer.
        await using var f = await ServerFixture.StartAsync();
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, "127.0.0.1", 0);
        var slow = new List<Socket>();
        try
        {
            for (var i = 0; i < 32; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                slow.Add(s);
                await s.ConnectAsync(admin.EndPoint);
                await s.SendAsync("G"u8.ToArray(), SocketFlags.None);
            }

            await Eventually.TrueAsync(() => admin.OpenConnections == 32, $"the 32 slow connections are accepted (now {admin.OpenConnections})");

            var answer = await GetAsync(admin.EndPoint, "GET /health HTTP/1.1\r\nHost: lb\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 200 OK\r\n", answer, StringComparison.Ordinal);
            await Eventually.TrueAsync(() => admin.OpenConnections <= 32, $"{admin.OpenConnections} connections open: the bound still holds");
            Assert.Equal("", await ReadToEndAsync(slow[0])); // the oldest slow one made room: closed, no answer
        }
        finally
        {
            foreach (var s in slow)
            {
                s.Dispose();
            }
        }
    }

    private static async Task<string> ReadToEndAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(RawConnection.ReadTimeout);
        var answer = new MemoryStream();
        try
        {
            var buffer = new byte[4096];
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
            {
                answer.Write(buffer, 0, n);
            }
        }
        catch (SocketException)
        {
        }

        return Encoding.UTF8.GetString(answer.ToArray());
    }

    // One request on a raw socket, the whole answer (the server closes after it; a reset reads as what arrived before it).
    private static async Task<string> GetAsync(IPEndPoint endPoint, string request)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(RawConnection.ReadTimeout);
        await socket.ConnectAsync(endPoint, timeout.Token);
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, timeout.Token);
        }
        catch (SocketException)
        {
        }

        return await ReadToEndAsync(socket);
    }
}
