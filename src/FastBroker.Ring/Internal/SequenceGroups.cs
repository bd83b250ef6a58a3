using System.Runtime.CompilerServices;

namespace FastBroker.Ring.Internal;

/// <summary>Copy-on-write arrays of gating sequences and the minimum over them.</summary>
internal static class SequenceGroups
{
    /// <summary>The smallest value among <paramref name="sequences"/>, or <paramref name="minimum"/> if that is smaller (or there are none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long GetMinimumSequence(Sequence[] sequences, long minimum = long.MaxValue)
    {
        for (var i = 0; i < sequences.Length; i++)
        {
            var value = sequences[i].Value;
            if (value < minimum)
            {
                minimum = value;
            }
        }

        return minimum;
    }

    /// <summary>
    /// Adds <paramref name="toAdd"/> to the array in <paramref name="field"/>, setting each to the cursor first so a
    /// consumer added while the ring runs does not gate on slots published before it joined.
    /// </summary>
    public static void Add(ref Sequence[] field, Sequence cursor, Sequence[] toAdd)
    {
        Sequence[] current, updated;
        do
        {
            current = Volatile.Read(ref field);
            updated = new Sequence[current.Length + toAdd.Length];
            Array.Copy(current, updated, current.Length);
            var cursorValue = cursor.Value;
            for (var i = 0; i < toAdd.Length; i++)
            {
                toAdd[i].SetValue(cursorValue);
                updated[current.Length + i] = toAdd[i];
            }
        }
        while (Interlocked.CompareExchange(ref field, updated, current) != current);

        // A publish may have happened between reading the cursor and the swap; re-sync to the latest cursor
        // only forwards, never backwards (a consumer may already have moved on).
        var latest = cursor.Value;
        foreach (var s in toAdd)
        {
            var v = s.Value;
            while (v < latest && !s.CompareAndSet(v, latest))
            {
                v = s.Value;
            }
        }
    }

    /// <summary>
    /// Adds <paramref name="toAdd"/> without touching their values (the DSL adds consumers before start, when
    /// every sequence is still at its initial value).
    /// </summary>
    public static void AddAsIs(ref Sequence[] field, Sequence[] toAdd)
    {
        Sequence[] current, updated;
        do
        {
            current = Volatile.Read(ref field);
            updated = new Sequence[current.Length + toAdd.Length];
            Array.Copy(current, updated, current.Length);
            Array.Copy(toAdd, 0, updated, current.Length, toAdd.Length);
        }
        while (Interlocked.CompareExchange(ref field, updated, current) != current);
    }

    /// <summary>Removes every occurrence of <paramref name="sequence"/>; true if any was removed.</summary>
    public static bool Remove(ref Sequence[] field, Sequence sequence)
    {
        Sequence[] current, updated;
        do
        {
            current = Volatile.Read(ref field);
            var count = 0;
            foreach (var s in current)
            {
                if (ReferenceEquals(s, sequence))
                {
                    count++;
                }
            }

            if (count == 0)
            {
                return false;
            }

            updated = new Sequence[current.Length - count];
            var j = 0;
            foreach (var s in current)
            {
                if (!ReferenceEquals(s, sequence))
                {
                    updated[j++] = s;
                }
            }
        }
        while (Interlocked.CompareExchange(ref field, updated, current) != current);

        return true;
    }
}
