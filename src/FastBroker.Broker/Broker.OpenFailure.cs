namespace FastBroker;

// A failed open releases what it opened before it throws: the caller (a failover node, an embedding application)
// may retry on the same directory in this process, where a journal left open would hold its flock, its mappings and
// its descriptors for as long as the process runs.
public sealed partial class Broker
{
    /// <summary>
    /// The constructor failed after the topics were opened (a recovery step, the producers' files, the pipeline or the
    /// metrics threw): stops the topics' durability loops, closes their journals and disposes the metrics if they were
    /// made. Nothing else was started. A failure here is logged and the open's own exception, <paramref name="cause"/>,
    /// is the one thrown.
    /// </summary>
    private void ReleaseUnbuilt(Exception cause)
    {
        Volatile.Write(ref _state, 2);
        ReleaseStep(cause, "its metrics", () => _metrics?.Dispose()); // made only if the timer's creation threw
        ReleaseStep(cause, "the topics' durability loops", StopDurabilityLoops);
        ReleaseStep(cause, "the topics' journals", _topics.Dispose);
    }

    /// <summary>
    /// The open failed once the broker was built (starting its journaler thread or its timer): closes it as
    /// <see cref="DisposeAsync"/> does (the pipeline stopped, the producers' files written, every journal closed),
    /// except the directory lock, which the open releases. If the close fails, the journals are closed anyway.
    /// </summary>
    private void ReleaseFailedStart(Exception cause)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            return;
        }

        // Blocking: the open is synchronous, and nothing but this thread uses the broker yet. The timer's and the
        // durability loops' tasks run on the pool, so the wait cannot deadlock.
        if (!ReleaseStep(cause, "the broker", () => CloseAsync().AsTask().GetAwaiter().GetResult()))
        {
            ReleaseStep(cause, "the topics' journals", _topics.Dispose);
            Volatile.Write(ref _state, 2);
        }
    }

    private void StopDurabilityLoops()
    {
        foreach (var t in _topics.All)
        {
            t.Durability?.StopAsync(_options.ShutdownTimeout).GetAwaiter().GetResult(); // nothing published: no wait
        }
    }

    /// <summary>Runs one release step; false, logged, when it threw (the open's own exception is the one thrown).</summary>
    private bool ReleaseStep(Exception cause, string what, Action step)
    {
        try
        {
            step();
            return true;
        }
        catch (Exception e)
        {
            _options.Log?.Invoke($"the failed open ({cause.GetType().Name}: {cause.Message}) could not release {what}: {e.GetType().Name}: {e.Message}");
            return false;
        }
    }
}
