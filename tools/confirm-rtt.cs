// The server's share of publish→confirm, with no client library: a paced PUBLISH (100-byte payload, idempotent
// producer) to a running `fastbroker serve` over a plain blocking socket, and its CONFIRM read by a thread blocked in
// recv. Variant "closed" sends and reads on one thread; "split" sends from a pacer and reads on a second thread (as
// the .NET client does with its receive thread), so publishes may overlap. Latency is from the intended send time
// (coordinated-omission corrected). Compare with `tools/tcp-rtt.cs` (the bare loopback round trip) and with
// `fastbroker bench e2e --connect … --filter confirm-latency-10k` (the same through the .NET client).
// The pacer yield-spins by default ("yield"), which keeps its vCPU busy; "sleep" sleeps in nanosleep until 40 µs
// before each send as `bench e2e` does, so an idle vCPU has to be woken for the CONFIRM (slow on a VM).
// Usage: dotnet run tools/confirm-rtt.cs -- <port> [rate=10000] [count=50000] [runs=3] [yield|sleep]
#:project ../src/FastBroker.Protocol/FastBroker.Protocol.csproj
#:property TargetFramework=net10.0
using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastBroker.Protocol;

var port = int.Parse(args[0]);
var rate = args.Length > 1 ? int.Parse(args[1]) : 10000;
var count = args.Length > 2 ? int.Parse(args[2]) : 50000;
var runs = args.Length > 3 ? int.Parse(args[3]) : 3;
var sleepPacer = args.Length > 4 && args[4] == "sleep";
if (sleepPacer)
{
    _ = Prctl(29, 1000, 0, 0, 0); // PR_SET_TIMERSLACK 1 µs for this (the pacing) thread, as bench e2e's pacer
}
var topic = "confirm-rtt"u8.ToArray();
var payload = new byte[100];
var producerId = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
ulong sequence = 0;
ulong requestId = 2;

using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
socket.Connect(new IPEndPoint(IPAddress.Loopback, port));
var frame = new ArrayBufferWriter<byte>();
FrameWriter.WriteHello(frame, 1, "confirm-rtt"u8, "1"u8, ProtocolFeatures.IdempotentProducer);
socket.Send(frame.WrittenSpan);
var rx = new byte[1 << 20];
if (ReadFrame(socket, rx) != FrameType.Welcome)
{
    throw new InvalidOperationException("no WELCOME");
}

Console.WriteLine($"{Environment.ProcessorCount} CPUs, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {count:N0} publishes at {rate:N0}/s per run to 127.0.0.1:{port}; pacer {(sleepPacer ? "sleep" : "yield")}; the first run is a warm-up");
foreach (var variant in new[] { "closed", "split" })
{
    for (var run = 0; run <= runs; run++)
    {
        var latencies = Measure(variant == "split");
        Array.Sort(latencies);
        double P(double q) => latencies[Math.Min(latencies.Length - 1, (int)(latencies.Length * q))] / 1000.0;
        Console.WriteLine($"{variant,-7} p50 {P(0.50),8:F1} µs   p90 {P(0.90),8:F1} µs   p99 {P(0.99),8:F1} µs   p99.9 {P(0.999),8:F1} µs   max {latencies[^1] / 1000.0,8:F1} µs{(run == 0 ? "   (warm-up)" : "")}");
    }
}

long[] Measure(bool split)
{
    var scheduled = new long[count];
    var confirmed = new long[count];
    var interval = Stopwatch.Frequency / (double)rate;
    var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
    var reader = split ? new Thread(() => ReadConfirms(confirmed, count)) { Name = "confirm-rtt-rx" } : null;
    reader?.Start();
    for (var i = 0; i < count; i++)
    {
        scheduled[i] = start + (long)(i * interval);
        WaitUntil(scheduled[i], sleepPacer);
        frame.ResetWrittenCount();
        FrameWriter.WritePublish(frame, requestId++, topic, payload, producerId: producerId, producerSequence: sequence++);
        socket.Send(frame.WrittenSpan);
        if (!split)
        {
            ReadConfirms(null, 1);
            confirmed[i] = Stopwatch.GetTimestamp();
        }
    }

    reader?.Join();
    var latencies = new long[count];
    for (var i = 0; i < count; i++)
    {
        latencies[i] = (long)((confirmed[i] - scheduled[i]) * 1e9 / Stopwatch.Frequency);
    }

    return latencies;
}

// Reads CONFIRMs until `expected` publishes are confirmed, stamping each with the time its frame arrived.
int ReadConfirms(long[]? stamps, int expected)
{
    var got = 0;
    while (got < expected)
    {
        var type = ReadFrame(socket, rx);
        if (type == FrameType.Ping)
        {
            continue; // heartbeats are answered by nothing here: a run is far shorter than the server's timeout
        }

        if (type != FrameType.Confirm)
        {
            throw new InvalidOperationException($"expected CONFIRM, got {type}");
        }

        var now = Stopwatch.GetTimestamp();
        var ranges = BinaryPrimitives.ReadUInt16LittleEndian(rx.AsSpan(16));
        for (var r = 0; r < ranges; r++)
        {
            var n = (int)BinaryPrimitives.ReadUInt32LittleEndian(rx.AsSpan(20 + (r * 24) + 8));
            for (var k = 0; k < n; k++)
            {
                if (stamps is not null)
                {
                    stamps[got] = now;
                }

                got++;
            }
        }
    }

    return got;
}

static FrameType ReadFrame(Socket s, byte[] buffer)
{
    Fill(s, buffer, 0, 4);
    var length = BinaryPrimitives.ReadInt32LittleEndian(buffer);
    Fill(s, buffer, 4, length);
    return (FrameType)buffer[4];
}

static void Fill(Socket s, byte[] buffer, int offset, int count)
{
    while (count > 0)
    {
        var n = s.Receive(buffer, offset, count, SocketFlags.None);
        if (n <= 0)
        {
            throw new IOException("the server closed the connection");
        }

        offset += n;
        count -= n;
    }
}

// Yields the CPU until the deadline (Thread.Sleep below 1 ms is a yield): a send within microseconds of its time.
// With `sleep`, first sleeps in nanosleep (timer slack 1 µs) until 40 µs before it.
static void WaitUntil(long deadline, bool sleep)
{
    long remainingNs;
    while ((remainingNs = (long)((deadline - Stopwatch.GetTimestamp()) * (1e9 / Stopwatch.Frequency))) > 0)
    {
        if (sleep && remainingNs > 40_000)
        {
            var request = new Timespec { Seconds = 0, Nanoseconds = Math.Min(remainingNs - 40_000, 999_999_999) };
            _ = NanoSleep(ref request, IntPtr.Zero);
            continue;
        }

        Thread.Yield();
    }
}

[System.Runtime.InteropServices.DllImport("libc", EntryPoint = "prctl")]
static extern int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

[System.Runtime.InteropServices.DllImport("libc", EntryPoint = "nanosleep")]
static extern int NanoSleep(ref Timespec request, IntPtr remaining);

[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
struct Timespec
{
    public long Seconds;
    public long Nanoseconds;
}
