using BenchmarkDotNet.Attributes;
using FastBroker.Journal;

namespace FastBroker.Benchmarks;

/// <summary>
/// Journal micro-benchmarks: appending 100-byte records (page-cache policy, a commit per 64-record batch, as the
/// journaler does at the end of a ring batch), a batch append, and zero-copy reads. MemoryDiagnoser shows that
/// steady state allocates nothing.
/// </summary>
[MemoryDiagnoser]
public class JournalBenchmarks
{
    private const int Batch = 64;
    private readonly byte[] _payload = new byte[100];
    private string _directory = "";
    private JournalLog _journal = null!;
    private JournalReader _reader = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), $"fastbroker-bdn-journal-{Environment.ProcessId}");
        _journal = JournalLog.Open(_directory, new JournalOptions
        {
            Durability = DurabilityPolicy.None,
            RetentionMaxBytes = 512L << 20, // keeps the disk bounded however many iterations BenchmarkDotNet runs
            RetentionCheckInterval = TimeSpan.FromSeconds(1),
        });
        for (var i = 0; i < 100_000; i++)
        {
            _journal.TryAppend(_payload, out _);
        }

        _journal.Commit();
        _reader = _journal.OpenReader(ReadStart.Beginning);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _reader.Dispose();
        _journal.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public long Append100B()
    {
        long last = 0;
        for (var i = 0; i < Batch; i++)
        {
            _journal.TryAppend(_payload, out last);
        }

        _journal.Commit();
        return last;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public long AppendBatch100B()
    {
        _journal.TryBeginBatch(Batch * JournalLog.StoredSize(0, 0, _payload.Length), out var batch);
        long last = 0;
        for (var i = 0; i < Batch; i++)
        {
            last = batch.Append(_payload);
        }

        batch.Complete();
        _journal.Commit();
        return last;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public long Read100B()
    {
        long sum = 0;
        for (var i = 0; i < Batch; i++)
        {
            if (!_reader.TryRead(out var record))
            {
                _reader.Dispose();
                _reader = _journal.OpenReader(ReadStart.Beginning);
                _reader.TryRead(out record);
            }

            sum += record.Payload.Length;
        }

        return sum;
    }
}
