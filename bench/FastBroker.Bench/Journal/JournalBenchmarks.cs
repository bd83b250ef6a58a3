using System.Diagnostics;
using FastBroker.Bench.Infrastructure;
using FastBroker.Journal;

namespace FastBroker.Bench.Journal;

/// <summary>
/// `fastbroker bench journal`: appends of 100 B and 1 KiB records under each durability policy and zero-copy
/// scans, against the same filesystem's ceiling measured in the same run: sequential 1 MiB writes through a
/// plain file (raw-buffered), and the same with fdatasync after each 1 MiB (raw-fdatasync).
/// </summary>
public static class JournalBenchmarks
{
    private const string Scenario = "journal";
    private const int RawChunk = 1 << 20;
    private const int CommitEvery = 64; // a ring batch: the journaler commits at the end of each batch

    /// <summary>Runs every journal scenario selected by the context.</summary>
    public static void Run(BenchContext ctx)
    {
        var root = Path.Combine(ctx.WorkDirectory ?? Path.GetTempPath(), $"fastbroker-bench-journal-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        try
        {
            var fs = FileSystemOf(root);
            ctx.Reporter.Info($"journal bench directory {root} ({fs}); {Environment.ProcessorCount} cores");
            if (fs is "tmpfs" or "ramfs")
            {
                ctx.Reporter.Info("warning: the directory is on a RAM filesystem, disk figures are meaningless (use --dir on a real disk)");
            }

            ctx.WarmUpMachine();
            var small = ctx.Messages ?? 2_000_000;
            var large = Math.Max(1, (ctx.Messages ?? 2_000_000) / 8);
            var rawBytes = large * 1024L;

            BenchResult? rawBuffered = null, rawSync = null;
            if (ctx.Selected("raw-buffered") || ctx.Selected("append-1k-none"))
            {
                rawBuffered = Raw(ctx, root, rawBytes, sync: false);
                ctx.Reporter.Result(rawBuffered);
            }

            if (ctx.Selected("raw-fdatasync") || ctx.Selected("groupcommit"))
            {
                rawSync = Raw(ctx, root, rawBytes, sync: true);
                ctx.Reporter.Result(rawSync);
            }

            foreach (var (label, payload, count) in new[] { ("100b", 100, small), ("1k", 1024, large) })
            {
                foreach (var (policyName, policy) in new[] { ("none", DurabilityPolicy.None), ("groupcommit", DurabilityPolicy.GroupCommit), ("interval", DurabilityPolicy.Interval) })
                {
                    var variant = $"append-{label}-{policyName}";
                    var scanVariant = $"scan-{label}";
                    var scan = policy == DurabilityPolicy.None && ctx.Selected(scanVariant);
                    if (!ctx.Selected(variant) && !scan)
                    {
                        continue;
                    }

                    var scanRates = new List<double>();
                    var rate = ctx.MedianOf(variant, run => Append(root, policy, payload, count, scan && run >= 0 ? scanRates : null));
                    var result = new BenchResult(Scenario, variant)
                    {
                        MsgsPerSec = rate,
                        BytesPerSec = rate * payload,
                        Runs = ctx.Runs,
                        Messages = count,
                        Note = policy switch
                        {
                            DurabilityPolicy.None => $"page cache, commit every {CommitEvery}",
                            DurabilityPolicy.GroupCommit => $"group commit (msync), commit every {CommitEvery}",
                            _ => "msync every 10 ms",
                        },
                    };
                    var baseline = policy switch
                    {
                        DurabilityPolicy.None => rawBuffered,
                        _ => rawSync,
                    };
                    if (ctx.Selected(variant))
                    {
                        ctx.Reporter.Result(baseline is not null && payload >= 1024 ? result.ComparedWith(baseline) : result);
                    }

                    if (scan && scanRates.Count > 0)
                    {
                        var scanRate = BenchContext.Median([.. scanRates]);
                        ctx.Reporter.Result(new BenchResult(Scenario, scanVariant)
                        {
                            MsgsPerSec = scanRate,
                            BytesPerSec = scanRate * payload,
                            Runs = scanRates.Count,
                            Messages = count,
                            Note = "zero-copy reader over the mapping, payload bytes",
                        });
                    }
                }
            }

            if (ctx.Selected("send-"))
            {
                SendVariants(ctx, root, small);
            }
        }
        finally
        {
            TryDelete(root);
        }
    }

    /// <summary>
    /// Delivering journal bytes to a socket (loopback, a receiver thread draining it), 100 B records: `send-copy`
    /// copies each record (as the server does with a DELIVER envelope) into a 64 KiB managed buffer and sends it;
    /// `send-mmap` sends whole runs straight from the mapping; `send-sendfile` lets the kernel copy page cache to
    /// the socket (<c>sendfile(2)</c>). Answers "does a kernel file-to-socket transfer beat the copy".
    /// </summary>
    private static void SendVariants(BenchContext ctx, string root, long count)
    {
        var dir = Path.Combine(root, $"send-{Guid.NewGuid():N}");
        var payload = new byte[100];
        Random.Shared.NextBytes(payload);
        try
        {
            using var journal = JournalLog.Open(dir, new JournalOptions { Durability = DurabilityPolicy.None, SegmentSize = 256 << 20 });
            for (long i = 0; i < count; i++)
            {
                journal.TryAppend(payload, out _);
                if ((i + 1) % CommitEvery == 0)
                {
                    journal.Commit();
                }
            }

            journal.Commit();
            long totalBytes;
            using (var probe = journal.OpenReader(ReadStart.Beginning))
            {
                totalBytes = 0;
                while (probe.TryRead(out var r))
                {
                    totalBytes += r.StoredLength;
                }
            }

            BenchResult? copy = null;
            foreach (var mode in new[] { "send-copy", "send-mmap", "send-sendfile" })
            {
                if (!ctx.Selected(mode) && !(mode == "send-copy" && ctx.Selected("send-")))
                {
                    continue;
                }

                var rate = ctx.MedianOf(mode, _ => SendOnce(journal, mode, totalBytes));
                var result = new BenchResult(Scenario, mode)
                {
                    MsgsPerSec = rate * count / totalBytes,
                    BytesPerSec = rate,
                    Runs = ctx.Runs,
                    Messages = count,
                    Note = mode switch
                    {
                        "send-copy" => "copy each record into a 64 KiB buffer, send (the server's path)",
                        "send-mmap" => "send runs straight from the mapping",
                        _ => "sendfile(2): page cache to socket in the kernel",
                    },
                };
                copy ??= mode == "send-copy" ? result : null;
                ctx.Reporter.Result(copy is not null && mode != "send-copy" ? result.ComparedWith(copy) : result);
            }
        }
        finally
        {
            TryDelete(dir);
        }
    }

    /// <summary>Sends every record of <paramref name="journal"/> over loopback in <paramref name="mode"/>; returns bytes/s.</summary>
    private static double SendOnce(JournalLog journal, string mode, long expectedBytes)
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        using var sender = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        sender.Connect((System.Net.IPEndPoint)listener.LocalEndpoint);
        using var receiver = listener.AcceptSocket();
        long received = 0;
        var drain = new Thread(() =>
        {
            var buffer = new byte[1 << 20];
            while (true)
            {
                var n = receiver.Receive(buffer);
                if (n <= 0)
                {
                    return;
                }

                received += n;
            }
        })
        { IsBackground = true, Name = "bench-send-drain" };
        drain.Start();

        var sw = Stopwatch.StartNew();
        long sent = 0;
        using (var reader = journal.OpenReader(ReadStart.Beginning))
        {
            switch (mode)
            {
                case "send-copy":
                    var buffer = new byte[64 << 10];
                    var used = 0;
                    while (reader.TryRead(out var record))
                    {
                        var raw = record.Raw;
                        if (used + record.StoredLength > buffer.Length)
                        {
                            sent += SendAll(sender, buffer.AsSpan(0, used));
                            used = 0;
                        }

                        raw.CopyTo(buffer.AsSpan(used));
                        used += record.StoredLength;
                    }

                    sent += SendAll(sender, buffer.AsSpan(0, used));
                    break;
                case "send-mmap":
                    while (reader.SendTo(sender) is var n && n > 0)
                    {
                        sent += n;
                    }

                    break;
                default:
                    while (reader.SendFileTo(sender) is var m && m > 0)
                    {
                        sent += m;
                    }

                    break;
            }
        }

        sender.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        drain.Join();
        var seconds = sw.Elapsed.TotalSeconds;
        if (received != expectedBytes || sent != expectedBytes)
        {
            throw new InvalidOperationException($"{mode}: sent {sent} B, received {received} B, expected {expectedBytes} B");
        }

        return received / seconds;
    }

    private static int SendAll(System.Net.Sockets.Socket socket, ReadOnlySpan<byte> bytes)
    {
        var sent = 0;
        while (sent < bytes.Length)
        {
            sent += socket.Send(bytes[sent..]);
        }

        return sent;
    }

    /// <summary>Appends <paramref name="count"/> records, waits until all are durable; returns records/s. Optionally scans them back.</summary>
    private static double Append(string root, DurabilityPolicy policy, int payloadSize, long count, List<double>? scanRates)
    {
        var dir = Path.Combine(root, $"j-{policy}-{payloadSize}-{Guid.NewGuid():N}");
        var payload = new byte[payloadSize];
        Random.Shared.NextBytes(payload);
        var options = new JournalOptions { Durability = policy, SegmentSize = 64 << 20, MaxUndurableBytes = 32 << 20 };
        try
        {
            double rate;
            using (var journal = JournalLog.Open(dir, options))
            {
                var sw = Stopwatch.StartNew();
                long last = -1;
                for (long i = 0; i < count; i++)
                {
                    long offset;
                    while (!journal.TryAppend(payload, out offset))
                    {
                        journal.WaitForDurable(journal.DurableOffset, TimeSpan.FromSeconds(30)); // back-pressure
                    }

                    last = offset;
                    if ((i + 1) % CommitEvery == 0)
                    {
                        journal.Commit();
                    }
                }

                journal.Commit();
                if (!journal.WaitForDurable(last, TimeSpan.FromMinutes(2)))
                {
                    throw new TimeoutException("journal did not become durable");
                }

                rate = count / sw.Elapsed.TotalSeconds;
                if (scanRates is not null)
                {
                    scanRates.Add(Scan(journal, count));
                }
            }

            return rate;
        }
        finally
        {
            TryDelete(dir);
        }
    }

    private static double Scan(JournalLog journal, long expected)
    {
        using var reader = journal.OpenReader(ReadStart.Beginning);
        var sw = Stopwatch.StartNew();
        long n = 0, checksum = 0;
        while (reader.TryRead(out var record))
        {
            var p = record.Payload;
            checksum += p.Length + p[0] + p[^1];
            n++;
        }

        var seconds = sw.Elapsed.TotalSeconds;
        if (n != expected)
        {
            throw new InvalidOperationException($"scan saw {n} records, expected {expected}");
        }

        GC.KeepAlive(checksum);
        return n / seconds;
    }

    private static BenchResult Raw(BenchContext ctx, string root, long totalBytes, bool sync)
    {
        var variant = sync ? "raw-fdatasync" : "raw-buffered";
        var chunk = new byte[RawChunk];
        Random.Shared.NextBytes(chunk);
        var bytesPerSec = ctx.MedianOf(variant, _ =>
        {
            var path = Path.Combine(root, $"raw-{Guid.NewGuid():N}.bin");
            try
            {
                var sw = Stopwatch.StartNew();
                using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
                {
                    for (long written = 0; written < totalBytes; written += RawChunk)
                    {
                        stream.Write(chunk);
                        if (sync)
                        {
                            _ = FastBroker.Journal.Internal.Native.Fdatasync((int)stream.SafeFileHandle.DangerousGetHandle());
                        }
                    }
                }

                return totalBytes / sw.Elapsed.TotalSeconds;
            }
            finally
            {
                TryDelete(path);
            }
        });
        return new BenchResult(Scenario, variant)
        {
            BytesPerSec = bytesPerSec,
            MsgsPerSec = bytesPerSec / RawChunk,
            Runs = ctx.Runs,
            Messages = totalBytes / RawChunk,
            Note = sync ? "FileStream, 1 MiB writes, fdatasync after each" : "FileStream, 1 MiB writes, page cache",
        };
    }

    /// <summary>The filesystem type of the mount holding <paramref name="path"/> (from /proc/self/mounts).</summary>
    private static string FileSystemOf(string path)
    {
        try
        {
            var best = (Mount: "", Type: "unknown");
            foreach (var line in File.ReadLines("/proc/self/mounts"))
            {
                var parts = line.Split(' ');
                if (parts.Length > 2 && path.StartsWith(parts[1], StringComparison.Ordinal) && parts[1].Length > best.Mount.Length
                    && (path.Length == parts[1].Length || parts[1].EndsWith('/') || path[parts[1].Length] == '/'))
                {
                    best = (parts[1], parts[2]);
                }
            }

            return best.Type;
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
            else if (File.Exists(path))
            {
                File.Delete(path);
            }
        }
        catch (IOException)
        {
        }
    }
}
