namespace FastBroker.Engine;

// One producer id: its window of recent sequences and where each was stored, its epochs, and its age.
internal sealed partial class ProducerRegistry
{
    private sealed class Producer(ulong id)
    {
        /// <summary>Slots of a new (or shrunk) producer's table; it doubles while the sequences kept span more, up to the window.</summary>
        private const int FirstSlots = 8;

        private ulong[] _sequences = new ulong[FirstSlots]; // sequence + 1; 0 = empty
        private TopicState?[] _topics = new TopicState?[FirstSlots];
        private long[] _offsets = new long[FirstSlots];
        private ulong _lowest = ulong.MaxValue;
        private ulong _highest;
        private ulong _fence;
        private ulong _windowEpoch;

        public ulong Id { get; } = id;

        /// <summary>Index in the registry's sweep array.</summary>
        public int Slot { get; set; }

        /// <summary>Timestamp (Unix ms) of the newest record written for it.</summary>
        public long LastWrite { get; private set; } = long.MinValue;

        /// <summary>Under the registry's lock (a capture): the place the newest capture of <c>producers.state</c> gave it (no topic: none).</summary>
        public Place Captured { get; set; }

        /// <summary>
        /// Under the registry's lock (a capture): the place the capture just before the one that first gave
        /// <see cref="Captured"/> gave it (no topic: none).
        /// </summary>
        public Place Previous { get; set; }

        /// <summary>Under the registry's lock: the Unix ms of its newest INIT_PRODUCER (or of its id's last use before it had a window).</summary>
        public long Used { get; set; } = long.MinValue;

        /// <summary>The newest epoch Init gave (written under the registry's lock, read by the journaler).</summary>
        public ulong Fence
        {
            get => Volatile.Read(ref _fence);
            set => Volatile.Write(ref _fence, value);
        }

        /// <summary>The epoch whose sequences the window holds (written by the journaler, read under the lock).</summary>
        public ulong WindowEpoch
        {
            get => Volatile.Read(ref _windowEpoch);
            init => _windowEpoch = value;
        }

        /// <summary>A newer instance's first record: an empty window for <paramref name="epoch"/>.</summary>
        public void Restart(ulong epoch)
        {
            _sequences = new ulong[FirstSlots];
            _topics = new TopicState?[FirstSlots];
            _offsets = new long[FirstSlots];
            _lowest = ulong.MaxValue;
            Volatile.Write(ref _highest, 0);
            Volatile.Write(ref _windowEpoch, epoch);
        }

        /// <summary>Written by the journaler only; read by <see cref="NextSequence"/> from any thread.</summary>
        public ulong Highest => Volatile.Read(ref _highest);

        public ulong Lowest => _lowest;

        /// <summary>Where the highest sequence's record is (false only for a producer with nothing recorded).</summary>
        public bool Newest(out TopicState topic, out long offset)
        {
            var found = TryFind(_highest, out var t, out offset);
            topic = t!;
            return found && t is not null;
        }

        public void Vouch(ulong highest, TopicState topic, long offset, int window)
        {
            // Sequences above the checkpoint's were written after it, so the rescan saw each one that is stored; those
            // below it that it did not see cannot be told apart from stored ones. The checkpoint's own record is known.
            var lowest = _lowest == ulong.MaxValue || highest >= _lowest ? highest : _lowest;
            Record(highest, topic, offset, window);
            _lowest = lowest;
        }

        public void Wrote(long timestamp)
        {
            if (timestamp > LastWrite)
            {
                LastWrite = timestamp;
            }
        }

        /// <summary>
        /// Idle: keep only the newest sequence (its retry is still a duplicate, the next one still new, and any older one
        /// is refused as too old), in a table of <see cref="FirstSlots"/>. A producer that wrote 65,536 messages held
        /// 1.5 MB; shrunk, under 400 bytes with its entry.
        /// </summary>
        public void Shrink()
        {
            if (_lowest == _highest && _sequences.Length == FirstSlots)
            {
                return; // already shrunk, or never held more than one sequence
            }

            var found = TryFind(_highest, out var topic, out var offset);
            if (_sequences.Length == FirstSlots)
            {
                Array.Clear(_sequences);
                Array.Clear(_topics);
            }
            else
            {
                _sequences = new ulong[FirstSlots];
                _topics = new TopicState?[FirstSlots];
                _offsets = new long[FirstSlots];
            }

            if (!found)
            {
                _lowest = _highest + 1; // where the newest is not known, a retry of it is refused too
                return;
            }

            _lowest = _highest;
            var i = (int)(_highest & (FirstSlots - 1));
            _sequences[i] = _highest + 1;
            _topics[i] = topic;
            _offsets[i] = offset;
        }

        public bool TryFind(ulong sequence, out TopicState? topic, out long offset)
        {
            var i = (int)(sequence & (ulong)(_sequences.Length - 1));
            if (_sequences[i] == sequence + 1)
            {
                topic = _topics[i];
                offset = _offsets[i];
                return true;
            }

            topic = null;
            offset = -1;
            return false;
        }

        public void Record(ulong sequence, TopicState topic, long offset, int window)
        {
            _lowest = Math.Min(_lowest, sequence);
            if (sequence > _highest)
            {
                Volatile.Write(ref _highest, sequence);
            }

            // Grow (up to the window) while the sequences kept span more than the table holds.
            while (_sequences.Length < window && _highest >= _lowest && _highest - _lowest >= (ulong)_sequences.Length)
            {
                Grow();
            }

            // A slot keeps the newer of two sequences: the restart rescan reads topic after topic, not in sequence
            // order, and an older sequence must not evict a newer one that a retry may still ask about.
            var i = (int)(sequence & (ulong)(_sequences.Length - 1));
            if (_sequences[i] > sequence + 1)
            {
                return;
            }

            _sequences[i] = sequence + 1;
            _topics[i] = topic;
            _offsets[i] = offset;
        }

        private void Grow()
        {
            var sequences = _sequences;
            var topics = _topics;
            var offsets = _offsets;
            var size = sequences.Length * 2;
            _sequences = new ulong[size];
            _topics = new TopicState?[size];
            _offsets = new long[size];
            for (var j = 0; j < sequences.Length; j++)
            {
                if (sequences[j] != 0)
                {
                    var i = (int)((sequences[j] - 1) & (ulong)(size - 1));
                    _sequences[i] = sequences[j];
                    _topics[i] = topics[j];
                    _offsets[i] = offsets[j];
                }
            }
        }
    }
}
