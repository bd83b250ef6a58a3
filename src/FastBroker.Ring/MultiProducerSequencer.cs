using System.Runtime.CompilerServices;
using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>
/// Sequencer for any number of publishing threads. A claim is one atomic add on the cursor (no CAS retry
/// loop under contention); publication marks each slot in an availability buffer with the lap number, so
/// consumers can tell a published slot from one that is merely claimed and read up to the first gap.
/// </summary>
/// <remarks>
/// <see cref="Sequencer.Cursor"/> is the highest <em>claimed</em> sequence. Slot flags are written with release
/// semantics after the entry is filled and read with acquire semantics before it is consumed.
/// </remarks>
public sealed class MultiProducerSequencer : Sequencer
{
    private readonly Sequence _gatingSequenceCache = new();
    private readonly int[] _availableBuffer;
    private readonly int _indexMask;
    private readonly int _indexShift;
    private readonly int _pad;

    /// <summary>Creates a sequencer for a ring of <paramref name="bufferSize"/> slots.</summary>
    public MultiProducerSequencer(int bufferSize, IWaitStrategy waitStrategy)
        : base(bufferSize, waitStrategy)
    {
        _pad = UnsafeAccess.PaddingElements<int>();
        _availableBuffer = new int[bufferSize + (2 * _pad)];
        _availableBuffer.AsSpan().Fill(-1);
        _indexMask = bufferSize - 1;
        _indexShift = System.Numerics.BitOperations.Log2((uint)bufferSize);
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override long Next(int n)
    {
        if ((uint)(n - 1) >= (uint)_bufferSize)
        {
            ThrowHelper.ThrowClaimOutOfRange(n, _bufferSize);
        }

        var next = _cursor.AddAndGet(n);
        var current = next - n;
        var wrapPoint = next - _bufferSize;
        var cached = _gatingSequenceCache.Value;
        if (wrapPoint > cached || cached > current)
        {
            WaitForCapacity(wrapPoint, current);
        }

        return next;
    }

    /// <inheritdoc />
    public override bool TryNext(int n, out long sequence)
    {
        if ((uint)(n - 1) >= (uint)_bufferSize)
        {
            ThrowHelper.ThrowClaimOutOfRange(n, _bufferSize);
        }

        long current, next;
        do
        {
            current = _cursor.Value;
            next = current + n;
            if (!HasCapacity(n, current))
            {
                sequence = default;
                return false;
            }
        }
        while (!_cursor.CompareAndSet(current, next));

        sequence = next;
        return true;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void Publish(long sequence)
    {
        SetAvailable(sequence);
        SignalIfBlocking();
    }

    /// <inheritdoc />
    public override void Publish(long lo, long hi)
    {
        for (var s = lo; s <= hi; s++)
        {
            SetAvailable(s);
        }

        SignalIfBlocking();
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool IsAvailable(long sequence)
        => Volatile.Read(ref UnsafeAccess.ElementAt(_availableBuffer, _pad + ((int)sequence & _indexMask))) == (int)(sequence >>> _indexShift);

    /// <inheritdoc />
    /// <remarks>
    /// A slot's flag is the lap of the last sequence published in it, so it only grows: the lap of
    /// <paramref name="sequence"/> or a later one means published. Compared as a wrapping difference, since the flag is
    /// the lap cut to 32 bits.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool HasPublished(long sequence)
        => unchecked(Volatile.Read(ref UnsafeAccess.ElementAt(_availableBuffer, _pad + ((int)sequence & _indexMask))) - (int)(sequence >>> _indexShift)) >= 0;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override long GetHighestPublishedSequence(long nextSequence, long availableSequence)
    {
        for (var s = nextSequence; s <= availableSequence; s++)
        {
            if (!IsAvailable(s))
            {
                return s - 1;
            }
        }

        return availableSequence;
    }

    /// <inheritdoc />
    public override long RemainingCapacity()
    {
        var produced = _cursor.Value;
        var consumed = SequenceGroups.GetMinimumSequence(Volatile.Read(ref _gatingSequences), produced);
        return _bufferSize - (produced - consumed);
    }

    /// <inheritdoc />
    public override bool HasAvailableCapacity(int requiredCapacity) => HasCapacity(requiredCapacity, _cursor.Value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetAvailable(long sequence)
        => Volatile.Write(ref UnsafeAccess.ElementAt(_availableBuffer, _pad + ((int)sequence & _indexMask)), (int)(sequence >>> _indexShift));

    private bool HasCapacity(int n, long current)
    {
        var wrapPoint = current + n - _bufferSize;
        var cached = _gatingSequenceCache.Value;
        if (wrapPoint > cached || cached > current)
        {
            var min = SequenceGroups.GetMinimumSequence(Volatile.Read(ref _gatingSequences), current);
            _gatingSequenceCache.SetValue(min);
            if (wrapPoint > min)
            {
                return false;
            }
        }

        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WaitForCapacity(long wrapPoint, long current)
    {
        var counter = 0;
        long min;
        while (wrapPoint > (min = SequenceGroups.GetMinimumSequence(Volatile.Read(ref _gatingSequences), current)))
        {
            WaitForSpace(ref counter);
        }

        _gatingSequenceCache.SetValue(min);
    }
}
