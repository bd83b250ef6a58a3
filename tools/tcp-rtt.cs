// The machine's floor for a standby round trip, with no broker involved: a paced 64-byte ping over loopback TCP to a
// child process that echoes it back, both sides blocked in recv between messages (as the replicator, the standby and
// the ack reader are). Variant "hop" adds one in-process thread hand-off before the send (a woken replicator thread).
// Variant "async" is the same ping over the runtime's async sockets, as the server and the client use them: the echo
// child answers from an async receive loop on the thread pool, and the replies are timed by an async receive loop on
// this side's thread pool (the pacer only sends), so each side pays the epoll thread → pool worker hand-off.
// Usage: dotnet run tools/tcp-rtt.cs -- [rate=10000] [count=50000] [runs=3]
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

if (args.Length == 2 && args[0] == "echo")
{
    using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    s.Connect(new IPEndPoint(IPAddress.Loopback, int.Parse(args[1])));
    var buffer = new byte[64];
    while (ReceiveExactly(s, buffer))
    {
        s.Send(buffer);
    }

    return;
}

if (args.Length == 2 && args[0] == "echo-async")
{
    using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, int.Parse(args[1])));
    var buffer = new byte[64];
    await Task.Run(async () =>
    {
        while (await ReceiveExactlyAsync(s, buffer))
        {
            await s.SendAsync(buffer);
        }
    });

    return;
}

var rate = args.Length > 0 ? int.Parse(args[0]) : 10_000;
var count = args.Length > 1 ? int.Parse(args[1]) : 50_000;
var runs = args.Length > 2 ? int.Parse(args[2]) : 3;
using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
listener.Listen(1);
using var child = Process.Start(new ProcessStartInfo(Environment.ProcessPath!, ["echo", ((IPEndPoint)listener.LocalEndPoint!).Port.ToString()]))!;
using var socket = listener.Accept();
socket.NoDelay = true;
using var asyncChild = Process.Start(new ProcessStartInfo(Environment.ProcessPath!, ["echo-async", ((IPEndPoint)listener.LocalEndPoint!).Port.ToString()]))!;
using var asyncSocket = await listener.AcceptAsync();
asyncSocket.NoDelay = true;
_ = Prctl(29, 1000, 0, 0, 0); // PR_SET_TIMERSLACK 1 µs, as the bench's pacer

// The hand-off thread of the "hop" variant: woken through a semaphore, it sends the ping.
var handoff = new SemaphoreSlim(0);
var ping = new byte[64];
var hopper = new Thread(() =>
{
    while (true)
    {
        handoff.Wait();
        socket.Send(ping);
    }
})
{ IsBackground = true, Name = "hop" };
hopper.Start();

Console.WriteLine($"{Environment.ProcessorCount} CPUs, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {count:N0} pings at {rate:N0}/s per run; 5 s warm-up");
Measure("direct", Math.Min(count, rate * 5), warmUp: true);
for (var run = 1; run <= runs; run++)
{
    Measure("direct", count, warmUp: false);
    Measure("hop", count, warmUp: false);
    MeasureAsync(count);
}

socket.Shutdown(SocketShutdown.Both);
asyncSocket.Shutdown(SocketShutdown.Both);
child.WaitForExit(5000);
asyncChild.WaitForExit(5000);

void Measure(string variant, int n, bool warmUp)
{
    var rtts = new long[n];
    var reply = new byte[64];
    var interval = Stopwatch.Frequency / (double)rate;
    var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
    for (var i = 0; i < n; i++)
    {
        // Timed from the intended send time (coordinated-omission correction, as the benchmarks do).
        var scheduled = start + (long)(i * interval);
        WaitUntil(scheduled);
        if (variant == "hop")
        {
            handoff.Release();
        }
        else
        {
            socket.Send(ping);
        }

        ReceiveExactly(socket, reply);
        rtts[i] = (Stopwatch.GetTimestamp() - scheduled) * 1_000_000_000 / Stopwatch.Frequency;
    }

    if (warmUp)
    {
        return;
    }

    Array.Sort(rtts);
    double P(double p) => rtts[Math.Min(n - 1, (int)(p / 100 * n))] / 1000.0;
    Console.WriteLine($"{variant,-7} p50 {P(50),8:F1} µs   p90 {P(90),8:F1} µs   p99 {P(99),8:F1} µs   p99.9 {P(99.9),8:F1} µs   max {rtts[^1] / 1000.0,8:F1} µs");
}

void MeasureAsync(int n)
{
    var rtts = new long[n];
    var scheduledAt = new long[n];
    var interval = Stopwatch.Frequency / (double)rate;
    var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
    var receiver = Task.Run(async () =>
    {
        var reply = new byte[64];
        for (var i = 0; i < n; i++)
        {
            await ReceiveExactlyAsync(asyncSocket, reply);
            rtts[i] = (Stopwatch.GetTimestamp() - Volatile.Read(ref scheduledAt[i])) * 1_000_000_000 / Stopwatch.Frequency;
        }
    });
    for (var i = 0; i < n; i++)
    {
        var scheduled = start + (long)(i * interval);
        WaitUntil(scheduled);
        Volatile.Write(ref scheduledAt[i], scheduled);
        asyncSocket.Send(ping);
    }

    receiver.Wait();
    Array.Sort(rtts);
    double P(double p) => rtts[Math.Min(n - 1, (int)(p / 100 * n))] / 1000.0;
    Console.WriteLine($"{"async",-7} p50 {P(50),8:F1} µs   p90 {P(90),8:F1} µs   p99 {P(99),8:F1} µs   p99.9 {P(99.9),8:F1} µs   max {rtts[^1] / 1000.0,8:F1} µs");
}

static async Task<bool> ReceiveExactlyAsync(Socket s, byte[] buffer)
{
    var got = 0;
    while (got < buffer.Length)
    {
        var n = await s.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None);
        if (n == 0)
        {
            return false;
        }

        got += n;
    }

    return true;
}

static bool ReceiveExactly(Socket s, byte[] buffer)
{
    var got = 0;
    while (got < buffer.Length)
    {
        var n = s.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
        if (n == 0)
        {
            return false;
        }

        got += n;
    }

    return true;
}

static void WaitUntil(long deadline)
{
    while (true)
    {
        var remainingNs = (deadline - Stopwatch.GetTimestamp()) * 1_000_000_000 / Stopwatch.Frequency;
        if (remainingNs <= 0)
        {
            return;
        }

        if (remainingNs > 40_000)
        {
            var ts = new Timespec { Seconds = 0, Nanoseconds = remainingNs - 40_000 };
            _ = NanoSleep(in ts, IntPtr.Zero);
            continue;
        }

        Thread.Yield();
    }
}

[DllImport("libc", EntryPoint = "nanosleep")]
static extern int NanoSleep(in Timespec request, IntPtr remaining);

[DllImport("libc", EntryPoint = "prctl")]
static extern int Prctl(int option, ulong a2, ulong a3, ulong a4, ulong a5);

[StructLayout(LayoutKind.Sequential)]
internal struct Timespec
{
    public long Seconds;
    public long Nanoseconds;
}
