using FastBroker.Engine;

namespace FastBroker.BrokerTests;

internal sealed partial class ProducerRegistryModel
{
    private enum Op
    {
        Check,
        Write,
        Failed,
        Init,
        Resume,
        Forgotten,
        Restart,
    }

    /// <summary>
    /// A broker restart, as <c>Broker.RecoverProducers</c> rebuilds the window: the newest records of each topic, topic
    /// after topic (in any order), then the checkpoint's entries, each skipped when older than the expiry. The checkpoint
    /// is the one written at close (a clean stop), one of the last captures whose later records all lie within their
    /// topic's rescan (a crash: the newest file may not have reached the disk), or none (missing or damaged).
    /// </summary>
    private void Restart()
    {
        _now += 10 + _rng.Next(100); // a restart takes longer than a millisecond: Init's clock moves past the epochs given
        ProducerRegistry.Entry[]? checkpoint = null;
        var mode = _rng.Next(10);
        if (mode < 4)
        {
            Capture();
            checkpoint = _captures[^1].Entries;
        }
        else if (mode < 8)
        {
            var valid = _captures.Where(c => Covered(c.At)).ToList();
            checkpoint = valid.Count == 0 ? null : valid[_rng.Next(valid.Count)].Entries;
        }

        Log(Op.Restart, 0, 0, 0, checkpoint is null ? -1 : checkpoint.Length);
        var registry = new ProducerRegistry(Window, _idleMs, _expiryMs);
        foreach (var t in Enumerable.Range(0, _topics.Length).OrderBy(_ => _rng.Next()))
        {
            var records = _journal[t];
            for (var i = Math.Max(0, records.Count - _rescan); i < records.Count; i++)
            {
                var rec = records[i];
                if (rec.P != 0 && !registry.Expired(rec.Ts, _now))
                {
                    registry.Record(rec.P, rec.S, _topics[t], rec.Offset, rec.Ts, rec.E);
                    rec.Seen = true;
                }
            }
        }

        var vouched = new Dictionary<ulong, Rec>();
        foreach (var entry in checkpoint ?? [])
        {
            // ProducerCheckpoint.Load checks each entry against the journal, and takes the record's timestamp and epoch.
            var t = Array.IndexOf(_topics, entry.Topic);
            var rec = entry.Offset < _journal[t].Count ? _journal[t][(int)entry.Offset] : null;
            if (rec is null || rec.P != entry.Producer || rec.S != entry.Highest)
            {
                Fail($"the checkpoint names {entry}, the journal holds no such record");
            }

            // Aged by the producer's newest write, which the entry carries (a failed lower sequence retried later is newer
            // than the highest's record). Aged by that record instead, seed 1680 stored a retry twice that the running
            // broker, which ages by the newest write, refused. Skipped, all its records are older than the expiry too.
            var written = Math.Max(rec!.Ts, entry.LastWrite);
            if (!registry.Expired(written, _now))
            {
                registry.Vouch(entry.Producer, entry.Highest, entry.Topic, entry.Offset, written, rec.E);
                vouched[entry.Producer] = rec;
            }
        }

        _registry = registry;
        foreach (var p in _producers)
        {
            Rebuild(p, vouched.GetValueOrDefault(p.Id), lost: checkpoint is null);
            foreach (var inst in p.Instances)
            {
                inst.NeedsResume = true; // the client resumes its epoch before resending after a reconnect
            }

            if (_registry.NextSequence(p.Id) != p.NextSequence)
            {
                Fail($"after the restart NextSequence({p.Id}) is {_registry.NextSequence(p.Id)}, the model's is {p.NextSequence}");
            }
        }

        // The broker writes producers.state when it opens, after recovery.
        _captures.Clear();
        Capture();
    }

    /// <summary>
    /// What the restarted registry knows of <paramref name="p"/>: the newest epoch among the records the rescan read and
    /// the checkpoint entry; that epoch's records; from the oldest of them (or the entry's, if higher) to the highest.
    /// </summary>
    private void Rebuild(Producer p, Rec? vouched, bool lost)
    {
        var kept = new List<Rec>();
        foreach (var rec in p.All)
        {
            rec.InRegistry = false;
            if (rec.Seen)
            {
                kept.Add(rec);
            }
            else if (IsExpired(rec.Ts) || lost)
            {
                rec.Forgotten = true; // older than the expiry, or the rescan's blind spot without a checkpoint
            }

            rec.Seen = false;
        }

        p.Forget(records: false);
        if (kept.Count == 0 && vouched is null)
        {
            return;
        }

        var epoch = Math.Max(kept.Count == 0 ? 0 : kept.Max(r => r.E), vouched?.E ?? 0);
        var window = kept.Where(r => r.E == epoch).ToList();
        foreach (var rec in window)
        {
            rec.InRegistry = true;
        }

        p.Known = true;
        p.WindowEpoch = p.Fence = epoch;
        p.Lowest = window.Count == 0 ? ulong.MaxValue : window.Min(r => r.S);
        p.High = window.Count == 0 ? 0 : window.Max(r => r.S);
        if (vouched is not null && vouched.E == epoch)
        {
            // Every sequence up to the entry's that the rescan did not find may be stored beyond it: refused.
            vouched.InRegistry = true;
            p.Lowest = window.Count == 0 || vouched.S >= p.Lowest ? vouched.S : p.Lowest;
            p.High = Math.Max(p.High, vouched.S);
        }

        p.LastWrite = p.All.Where(r => r.InRegistry).Max(r => r.Ts);
    }

    private bool IsExpired(long timestamp) => _registry.Expired(timestamp, _now);

    /// <summary>Whether every record written after a capture at <paramref name="at"/> lies within its topic's rescan.</summary>
    private bool Covered(int at) => _journal.All(records => records.Count <= _rescan || records[records.Count - _rescan - 1].Index < at);

    private readonly record struct Step(long Now, Op Op, ulong Producer, ulong Epoch, ulong Sequence, long Value, int Topic)
    {
        public override string ToString() => Op switch
        {
            Op.Check => $"{Now}: check p{Producer} e{Epoch} s{Sequence} -> {(ProducerRegistry.Verdict)Value}",
            Op.Write => $"{Now}: write p{Producer} e{Epoch} s{Sequence} at t{Topic}@{Value}",
            Op.Failed => $"{Now}: append failed p{Producer} e{Epoch} s{Sequence}",
            Op.Init => $"{Now}: init p{Producer} -> e{Epoch} next {Sequence}",
            Op.Resume => $"{Now}: resume p{Producer} e{Epoch} -> {(Value == 0 ? "refused" : $"next {Sequence}")}",
            Op.Forgotten => $"{Now}: sweep forgot p{Producer}",
            _ => $"{Now}: restart with {(Value < 0 ? "no checkpoint" : $"a checkpoint of {Value} entries")}",
        };
    }

    /// <summary>A record in a topic's journal (producer 0: a message without a producer id).</summary>
    private sealed class Rec(ulong producer, ulong epoch, ulong sequence, int topic, long offset, long timestamp, int index)
    {
        public ulong P { get; } = producer;

        public ulong E { get; } = epoch;

        public ulong S { get; } = sequence;

        public int Topic { get; } = topic;

        public long Offset { get; } = offset;

        public long Ts { get; } = timestamp;

        /// <summary>Order of writing, over all topics.</summary>
        public int Index { get; } = index;

        /// <summary>Forgotten in a documented way: a write of it again is allowed.</summary>
        public bool Forgotten { get; set; }

        /// <summary>In the registry's window: a retry of it must be found (where the window still reaches).</summary>
        public bool InRegistry { get; set; }

        /// <summary>Read by the restart in progress.</summary>
        public bool Seen { get; set; }
    }

    private sealed class Instance(ulong epoch)
    {
        public ulong Epoch { get; } = epoch;

        public ulong Next { get; set; }

        public bool NeedsResume { get; set; }

        public List<ulong> Failed { get; } = [];

        public List<ulong> Sent { get; } = [];
    }

    /// <summary>A producer id: what it stored, and what the model expects the registry to know of it.</summary>
    private sealed class Producer(ulong id, bool epochs)
    {
        public ulong Id { get; } = id;

        /// <summary>Its instances take epochs from Init; otherwise one instance publishes without (epoch 0).</summary>
        public bool Epochs { get; } = epochs;

        public List<Rec> All { get; } = [];

        public Dictionary<(ulong Epoch, ulong Sequence), List<Rec>> Written { get; } = [];

        public List<Instance> Instances { get; } = [];

        public HashSet<ulong> EpochsGiven { get; } = [];

        public long SleepUntil { get; set; }

        /// <summary>In the registry's producers; then the epoch of its window, and its highest and oldest sequence.</summary>
        public bool Known { get; set; }

        public ulong WindowEpoch { get; set; }

        public ulong High { get; set; }

        public ulong Lowest { get; set; }

        /// <summary>What the sweep may have shrunk it to (at least what it did: a retry below need not be found).</summary>
        public ulong ShrinkFloor { get; set; }

        /// <summary>The newest epoch Init gave or a record carried, as far as the registry can know.</summary>
        public ulong Fence { get; set; }

        public long LastWrite { get; set; }

        public ulong NextSequence => Known ? High + 1 : 0;

        public void Add(Rec rec)
        {
            All.Add(rec);
            if (!Written.TryGetValue((rec.E, rec.S), out var recs))
            {
                Written[(rec.E, rec.S)] = recs = [];
            }

            recs.Add(rec);
        }

        /// <summary>The sweep forgot it (every record may be written again: its id counts as new), or a restart rebuilds it.</summary>
        public void Forget(bool records = true)
        {
            if (records)
            {
                foreach (var rec in All)
                {
                    rec.Forgotten = true;
                    rec.InRegistry = false;
                }
            }

            Known = false;
            WindowEpoch = High = Lowest = ShrinkFloor = Fence = 0;
            LastWrite = long.MinValue;
        }
    }
}
