using System.Net.Sockets;
using FastBroker.Net;

namespace FastBroker.ServerTests;

/// <summary>
/// The shared accept step over a scripted sequence of failures (the seam of <see cref="SocketAccept"/>): it counts
/// the attempts and the waits asked for, so nothing here depends on how fast the machine is.
/// </summary>
public class AcceptBackOffTests
{
    [Fact]
    public async Task Persistent_accept_failures_back_off_to_one_second_log_boundedly_and_reset_after_an_accept()
    {
        using var accepted = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var script = new Queue<SocketError>(Enumerable.Repeat(SocketError.TooManyOpenSockets, 12));
        var attempts = 0;
        ValueTask<Socket> Accept(CancellationToken _)
        {
            attempts++;
            Assert.True(attempts <= 100, "the accept step is retried without end");
            return script.TryDequeue(out var error) ? throw new SocketException((int)error) : ValueTask.FromResult(accepted);
        }

        var waits = new List<long>();
        Task Delay(TimeSpan wait, CancellationToken _)
        {
            waits.Add((long)wait.TotalMilliseconds);
            return Task.CompletedTask;
        }

        var log = new List<string>();
        Assert.Same(accepted, await SocketAccept.NextAsync(Accept, Delay, CancellationToken.None, log.Add));
        Assert.Equal(13, attempts);
        Assert.Equal([5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000], waits);

        // The first failure, one line per 1 s step with the count, and the recovery: not one line per attempt.
        Assert.Equal(6, log.Count);
        Assert.Contains("TooManyOpenSockets", log[0]);
        Assert.Contains("(1 in a row); retrying in 5 ms", log[0]);
        Assert.Contains("(9 in a row); retrying in 1000 ms", log[1]);
        Assert.Contains("(12 in a row); retrying in 1000 ms", log[4]);
        Assert.Contains("accepting again after 12 failed attempt(s)", log[5]);

        // The next accept starts from the first step again.
        script.Enqueue(SocketError.NoBufferSpaceAvailable);
        waits.Clear();
        Assert.Same(accepted, await SocketAccept.NextAsync(Accept, Delay, CancellationToken.None, log.Add));
        Assert.Equal([5], waits);
    }

    [Fact]
    public async Task A_connection_reset_before_accept_is_skipped_without_a_wait()
    {
        using var accepted = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var script = new Queue<SocketError>([SocketError.ConnectionAborted, SocketError.ConnectionReset]);
        ValueTask<Socket> Accept(CancellationToken _)
            => script.TryDequeue(out var error) ? throw new SocketException((int)error) : ValueTask.FromResult(accepted);
        var waits = 0;
        Task Delay(TimeSpan wait, CancellationToken _)
        {
            waits++;
            return Task.CompletedTask;
        }

        Assert.Same(accepted, await SocketAccept.NextAsync(Accept, Delay, CancellationToken.None, null));
        Assert.Equal(0, waits);
    }

    [Fact]
    public async Task Connections_refused_at_accept_are_closed_logged_at_powers_of_two_and_the_next_one_is_returned()
    {
        var sockets = Enumerable.Range(0, 6).Select(_ => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)).ToList();
        try
        {
            var next = 0;
            ValueTask<Socket> Accept(CancellationToken _) => ValueTask.FromResult(sockets[next++]);
            Task Delay(TimeSpan wait, CancellationToken _) => throw new InvalidOperationException("a refusal is no failure: no wait");
            var log = new List<string>();

            // The first five are in the reserve, the sixth is kept.
            var kept = await SocketAccept.NextAsync(Accept, Delay, CancellationToken.None, log.Add, s => s != sockets[5] ? "out of descriptors" : null);
            Assert.Same(sockets[5], kept);
            Assert.All(sockets.Take(5), s => Assert.Throws<ObjectDisposedException>(() => s.Available));
            Assert.Equal(4, log.Count);
            Assert.Contains("closed a connection at accept: out of descriptors (1 in a row)", log[0]);
            Assert.Contains("(2 in a row)", log[1]);
            Assert.Contains("(4 in a row)", log[2]);
            Assert.Contains("accepting again after 0 failed attempt(s) and 5 connection(s) closed at accept", log[3]);
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task Stopping_during_a_back_off_ends_the_wait_with_null()
    {
        using var stop = new CancellationTokenSource();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempts = 0;
        ValueTask<Socket> Accept(CancellationToken _)
        {
            // Bounded: a step that retries at once fails here instead of spinning for ever.
            return ++attempts <= 100 ? throw new SocketException((int)SocketError.TooManyOpenSockets) : throw new ObjectDisposedException("listener");
        }

        Task Delay(TimeSpan wait, CancellationToken token)
        {
            waiting.TrySetResult();
            return Task.Delay(Timeout.InfiniteTimeSpan, token); // only the stop token can end this wait
        }

        var next = SocketAccept.NextAsync(Accept, Delay, stop.Token, null).AsTask();
        Assert.Same(waiting.Task, await Task.WhenAny(waiting.Task, next).WaitAsync(TimeSpan.FromSeconds(60)));
        await stop.CancelAsync();
        Assert.Null(await next.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, attempts);
    }
}
