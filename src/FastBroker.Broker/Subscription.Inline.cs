using FastBroker.Engine;

namespace FastBroker;

// An inline subscription's delivery: the broker calls its handler.
public sealed partial class Subscription
{
    /// <summary>An inline subscription's handler and its delivery loop.</summary>
    internal sealed class Inline<THandler>(Subscription owner, THandler handler) : InlineDelivery
        where THandler : IMessageHandler
    {
        private THandler _handler = handler;

        protected override void Drain()
        {
            lock (owner._deliverGate)
            {
                if (Volatile.Read(ref owner._disposed) != 0 || owner._fault is not null)
                {
                    return;
                }

                owner._delivering = true;
                try
                {
                    var batch = owner.Options.BatchSize;
                    // Until nothing is left to read (a batch that the filters emptied is not the end).
                    while (Volatile.Read(ref owner._disposed) == 0)
                    {
                        owner.FetchCore(batch, ref _handler, out var read, autoCommit: true);
                        if (read == 0)
                        {
                            break;
                        }
                    }
                }
                catch (Exception ex)
                {
                    // The handler's failure is the subscription's, never the pipeline's: stop delivering and say why.
                    Volatile.Write(ref owner._fault, ex);
                    owner._signal.Set();
                }
                finally
                {
                    owner._delivering = false;
                    if (owner._releaseAfterDelivery)
                    {
                        owner._releaseAfterDelivery = false;
                        owner.ReleaseCursors();
                    }
                }
            }
        }
    }
}
