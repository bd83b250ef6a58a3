using System.Buffers;
using System.Text;

namespace FastBroker.Testing;

/// <summary>
/// A claim of one slot of a broker's input ring held uncommitted by a thread of its own until <see cref="Release"/>, then
/// committed with a message: the journaler waits on each claimed sequence in turn, so nothing claimed after it is stored
/// or confirmed meanwhile. Also compiled into the server's tests (a linked file).
/// </summary>
internal sealed class HeldSlot : IDisposable
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(30);
    private readonly ManualResetEventSlim _claimed = new();
    private readonly ManualResetEventSlim _release = new();
    private readonly Thread _thread;
    private Exception? _error;

    public HeldSlot(Broker broker, string topic, string payload)
    {
        _thread = new Thread(() =>
        {
            try
            {
                Assert.True(broker.TryBeginPublish(1, out var claim), "a slot of the input ring");
                try
                {
                    Sequence = broker.Ring.Cursor;
                    _claimed.Set();
                    _release.Wait(s_deadline);
                    claim.Add(Encoding.UTF8.GetBytes(topic), default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(payload)), default, null, 0);
                    claim.Commit();
                }
                finally
                {
                    claim.Dispose();
                }
            }
            catch (Exception e)
            {
                _error = e;
            }
            finally
            {
                _claimed.Set();
            }
        })
        { IsBackground = true, Name = "test: held claim" };
        _thread.Start();
        Assert.True(_claimed.Wait(s_deadline), "the slot is claimed");
        Assert.Null(_error);
    }

    /// <summary>The held slot's sequence (the ring's cursor right after the claim: no other publisher claims meanwhile in these tests).</summary>
    public long Sequence { get; private set; }

    /// <summary>What the holding thread threw (claiming or committing), once released.</summary>
    public Exception? Error => Volatile.Read(ref _error);

    /// <summary>Commits the held slot and waits for the thread to finish.</summary>
    public void Release()
    {
        _release.Set();
        Assert.True(_thread.Join(s_deadline), "the held claim is committed");
    }

    public void Dispose()
    {
        Release();
        _claimed.Dispose();
        _release.Dispose();
    }
}
