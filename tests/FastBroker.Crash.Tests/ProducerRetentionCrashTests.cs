using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process hosting the broker after retention deleted an idempotent producer's records, before any
/// producers.state capture named the producer (one comes every 8,192 records; retention deleted the records after a
/// few thousand): the running broker kept the producer's window (retention never touches it), and a restart must not
/// forget it, so a retry of its newest sequence is a duplicate (or refused), never stored a second time.
/// </summary>
public class ProducerRetentionCrashTests
{
    [Fact]
    public async Task After_a_kill_9_a_retry_of_a_producers_record_that_retention_deleted_is_not_stored_again()
    {
        Assert.True(File.Exists(BrokerCrashTests.HostPath), $"crash host not built next to the tests: {BrokerCrashTests.HostPath}");
        using var dir = new TempDirectory("fastbroker-producer-retention-crash");
        using (var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, dir.Path, "producer-retention"))
        {
            Eventually.True(() => child.Lines.Contains("D") || child.HasExited, "retention deletes the producer's records", TimeSpan.FromSeconds(120));
            Assert.False(child.HasExited, $"the crash host exited: {child.Errors}");
            child.Kill();
        }

        await using var broker = await Broker.OpenAsync(ProducerRetentionCrash.Options(dir.Path));
        var head = broker.GetSnapshot().Topics.Single(t => t.Name == "t").Head;
        var sink = new Sink();
        Assert.True(broker.TryBeginPublish(1, out var claim));
        claim.Add("t"u8, default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes("p4")), new PublishParameters(ProducerId: ProducerRetentionCrash.Producer, ProducerSequence: 4), sink, 4);
        claim.Commit();
        Eventually.True(() => !sink.Outcomes.IsEmpty, "the retry is answered");
        var (offset, duplicate, error) = Assert.Single(sink.Outcomes);
        Assert.True((offset, duplicate, error) is (4, true, BrokerErrorCode.None) or (-1, false, BrokerErrorCode.InvalidArgument), $"the retry of sequence 4 (stored at offset 4) was answered ({offset}, duplicate {duplicate}, {error}): stored again");
        Assert.Equal(head, broker.GetSnapshot().Topics.Single(t => t.Name == "t").Head);
    }

    private sealed class Sink : IPublishConfirmSink
    {
        public ConcurrentQueue<(long Offset, bool Duplicate, BrokerErrorCode Error)> Outcomes { get; } = new();

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Outcomes.Enqueue((offset, duplicate, BrokerErrorCode.None));

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Outcomes.Enqueue((-1, false, code));
    }
}
