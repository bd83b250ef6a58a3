using System.Diagnostics;
using FastBroker.Client;

namespace FastBroker.Cli.Commands;

/// <summary>
/// <c>sub --durable</c>'s commits: the position after the last message printed of each topic, every interval while
/// messages flow, once they pause and at exit, so a kill -9 loses at most an interval of progress (it lost all of it
/// when the position was committed only at exit). Each commit names the printed message itself, never the
/// subscription's taken position, which a message being read may already have moved past what was printed.
/// </summary>
internal sealed class PrintedCommits(ClientSubscription subscription, TimeSpan interval)
{
    private readonly Dictionary<string, ClientMessage> _printed = new(StringComparer.Ordinal);
    private long _lastCommit = Stopwatch.GetTimestamp();

    /// <summary>The next message, committing what was printed if none comes before the interval is up.</summary>
    public async ValueTask<bool> NextAsync(IAsyncEnumerator<ClientMessage> messages, CancellationToken cancellationToken)
    {
        var next = messages.MoveNextAsync();
        if (next.IsCompleted || _printed.Count == 0)
        {
            return await next.ConfigureAwait(false);
        }

        var move = next.AsTask();
        try
        {
            await CommitWhenPausedAsync(move, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopped while waiting or committing: the read ends with the same token, and must have ended before the
            // enumerator is disposed (an async iterator refuses DisposeAsync while a MoveNextAsync is pending).
        }

        return await move.ConfigureAwait(false);
    }

    private async Task CommitWhenPausedAsync(Task<bool> move, CancellationToken cancellationToken)
    {
        var wait = interval - Stopwatch.GetElapsedTime(_lastCommit);
        if (wait > TimeSpan.Zero)
        {
            using var pause = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (await Task.WhenAny(move, Task.Delay(wait, pause.Token)).ConfigureAwait(false) == move)
            {
                await pause.CancelAsync().ConfigureAwait(false);
                return;
            }

            cancellationToken.ThrowIfCancellationRequested();
        }

        await CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Records <paramref name="message"/> as printed; commits when the interval is up.</summary>
    public ValueTask PrintedAsync(ClientMessage message, CancellationToken cancellationToken)
    {
        _printed[message.Topic] = message;
        return Stopwatch.GetElapsedTime(_lastCommit) >= interval ? CommitAsync(cancellationToken) : ValueTask.CompletedTask;
    }

    /// <summary>Commits the position after the last printed message of each topic.</summary>
    public async ValueTask CommitAsync(CancellationToken cancellationToken)
    {
        foreach (var m in _printed.Values)
        {
            await subscription.CommitAsync(m, cancellationToken).ConfigureAwait(false);
        }

        _printed.Clear();
        _lastCommit = Stopwatch.GetTimestamp();
    }
}
