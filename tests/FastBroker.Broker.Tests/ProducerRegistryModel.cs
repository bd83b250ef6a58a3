using System.Text;
using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// One seed of <see cref="ProducerRegistryModelTests"/>: a <see cref="ProducerRegistry"/> driven as the journaler drives it,
/// and the model it is checked against (the records written, per producer and per topic's journal).
/// </summary>
internal sealed partial class ProducerRegistryModel
{
    public const int Seeds = 200;
    private const int Batches = 1_000;
    private const int Window = 64;
    private const int CaptureInterval = 16; // records written between checkpoint captures (8,192 in the broker)
    private const int MaxInstances = 4;

    private readonly int _seed;
    private readonly Random _rng;
    private readonly TopicState[] _topics;
    private readonly List<Rec>[] _journal;
    private readonly Producer[] _producers;
    private readonly long _idleMs;
    private readonly long _expiryMs;
    private readonly int _rescan; // the newest records of each topic a restart reads (ProducerRecoveryRecords)
    private readonly List<Step> _steps = [];
    private readonly List<(ProducerRegistry.Entry[] Entries, int At)> _captures = [];
    private ProducerRegistry _registry;
    private long _now = 1_000_000;
    private int _writes;
    private int _sinceCapture;

    public ProducerRegistryModel(int seed, TopicState[] topics)
    {
        _seed = seed;
        _rng = new Random(seed);
        _topics = topics;
        _journal = [.. topics.Select(_ => new List<Rec>())];
        _producers = [.. Enumerable.Range(1, 2 + _rng.Next(5)).Select(id => new Producer((ulong)id, epochs: _rng.Next(5) < 3))];
        _idleMs = 20 + _rng.Next(40);
        _expiryMs = _idleMs * (2 + _rng.Next(4));
        _rescan = CaptureInterval * (1 + _rng.Next(4)); // at least one capture interval: the checkpoint covers the rest
        _registry = new ProducerRegistry(Window, _idleMs, _expiryMs);
        foreach (var p in _producers.Where(p => !p.Epochs))
        {
            p.Instances.Add(new Instance(0));
        }
    }

    public void Run()
    {
        for (var b = 0; b < Batches; b++)
        {
            var r = _rng.Next(100);
            _now += r < 60 ? 0 : r < 98 ? 1 + _rng.Next(3) : _rng.NextInt64(_idleMs / 2, _expiryMs * 2);
            if (_rng.Next(100) == 0)
            {
                Restart();
            }

            Sweep();
            for (var n = 1 + _rng.Next(6); n > 0; n--)
            {
                Act();
            }
        }
    }

    private void Act()
    {
        if (_rng.Next(12) == 0)
        {
            // A message without a producer id: not in the window, but it pushes older records out of the rescan.
            var t = _rng.Next(_topics.Length);
            _journal[t].Add(new Rec(0, 0, 0, t, _journal[t].Count, _now, _writes++));
            CountWrite();
            return;
        }

        var p = _producers[_rng.Next(_producers.Length)];
        if (_now < p.SleepUntil && _rng.Next(10) != 0)
        {
            return;
        }

        if (_rng.Next(150) == 0)
        {
            p.SleepUntil = _now + _rng.NextInt64(_idleMs / 2, _expiryMs * 2); // idle long enough to shrink or expire
            return;
        }

        if (p.Epochs && (p.Instances.Count == 0 || _rng.Next(40) == 0))
        {
            InitNew(p);
            return;
        }

        // Mostly the newest instance; the older ones go on publishing with their old epoch.
        var inst = _rng.Next(4) != 0 ? p.Instances[^1] : p.Instances[_rng.Next(p.Instances.Count)];
        if (p.Epochs && (inst.NeedsResume || _rng.Next(40) == 0))
        {
            Resume(p, inst);
            return;
        }

        var r = _rng.Next(100);
        ulong s;
        if (r < 15 && inst.Failed.Count > 0)
        {
            var i = _rng.Next(inst.Failed.Count);
            s = inst.Failed[i];
            inst.Failed[i] = inst.Failed[^1];
            inst.Failed.RemoveAt(inst.Failed.Count - 1);
        }
        else if (r < 40 && inst.Sent.Count > 0)
        {
            // A retry of an earlier sequence: mostly a recent one, sometimes one far beyond the window.
            s = _rng.Next(10) < 7 ? inst.Sent[inst.Sent.Count - 1 - _rng.Next(Math.Min(inst.Sent.Count, 80))]
                : _rng.Next(2) == 0 ? inst.Sent[_rng.Next(inst.Sent.Count)]
                : (ulong)_rng.NextInt64((long)inst.Next + 1);
        }
        else
        {
            // The next sequence, sometimes after a gap (messages lost on the way: some retried later, some never).
            s = inst.Next + (_rng.Next(8) == 0 ? (ulong)_rng.Next(1, 4) : 0);
            for (var g = inst.Next; g < s; g++)
            {
                if (_rng.Next(2) == 0)
                {
                    inst.Failed.Add(g);
                }
            }

            inst.Next = s + 1;
            inst.Sent.Add(s);
            if (inst.Sent.Count > 400)
            {
                inst.Sent.RemoveRange(0, 200);
            }
        }

        Publish(p, inst, s);
    }

    private void Publish(Producer p, Instance inst, ulong s)
    {
        var e = inst.Epoch;
        var verdict = _registry.Check(p.Id, s, out var topic, out var offset, out var highest, e, _now);
        Log(Op.Check, p.Id, e, s, (long)verdict);
        Verify(p, e, s, verdict, topic, offset, highest);
        if (verdict != ProducerRegistry.Verdict.New)
        {
            return;
        }

        if (_rng.Next(20) == 0)
        {
            // The append failed (journal full, a fault): nothing stored, the client retries it later.
            Log(Op.Failed, p.Id, e, s, 0);
            inst.Failed.Add(s);
            return;
        }

        var t = _rng.Next(_topics.Length);
        var rec = new Rec(p.Id, e, s, t, _journal[t].Count, _now, _writes++);
        _journal[t].Add(rec);
        p.Add(rec);
        _registry.Record(p.Id, s, _topics[t], rec.Offset, _now, e);
        Log(Op.Write, p.Id, e, s, rec.Offset, t);

        // The model of the window: a newer epoch's first record starts a new one.
        if (!p.Known || (e != 0 && e > p.WindowEpoch))
        {
            foreach (var old in p.All)
            {
                old.InRegistry = false;
            }

            p.LastWrite = p.Known ? p.LastWrite : long.MinValue;
            p.Known = true;
            p.WindowEpoch = e;
            p.High = p.Lowest = s;
            p.ShrinkFloor = 0;
        }

        rec.InRegistry = true;
        p.High = Math.Max(p.High, s);
        p.Lowest = Math.Min(p.Lowest, s);
        p.Fence = Math.Max(p.Fence, e);
        p.LastWrite = Math.Max(p.LastWrite, _now);
        if (_registry.NextSequence(p.Id) != p.High + 1)
        {
            Fail($"NextSequence({p.Id}) is {_registry.NextSequence(p.Id)}, the model's highest is {p.High}");
        }

        CountWrite();
    }

    private void Verify(Producer p, ulong e, ulong s, ProducerRegistry.Verdict verdict, TopicState? topic, long offset, ulong highest)
    {
        var recs = p.Written.GetValueOrDefault((e, s));
        var remembered = recs?.Exists(r => !r.Forgotten) == true;
        var held = recs?.Exists(r => r.InRegistry) == true;
        var fenced = e != 0 && e < p.Fence;
        var what = new What(p.Id, e, s);

        // 3. Fencing, exactly.
        if ((verdict == ProducerRegistry.Verdict.Fenced) != fenced)
        {
            Fail($"3 (fencing): {what} is {verdict}, the newest epoch is {p.Fence}");
        }

        // 1. Never a duplicate write.
        if (remembered && verdict == ProducerRegistry.Verdict.New)
        {
            Fail($"1 (duplicate write): {what} is New, but it is stored at {Where(recs!)}", p);
        }

        // 2. Never a false duplicate.
        if (verdict == ProducerRegistry.Verdict.Duplicate)
        {
            var t = Array.IndexOf(_topics, topic);
            if (recs?.Exists(r => r.Topic == t && r.Offset == offset) != true)
            {
                Fail($"2 (false duplicate): {what} confirmed at t{t}@{offset}, but it is stored at {(recs is null ? "no offset" : Where(recs))}", p);
            }
        }

        if (highest != (p.Known ? p.High : 0))
        {
            Fail($"{what}: highest {highest}, the model's is {(p.Known ? p.High : 0)}");
        }

        if (fenced)
        {
            return;
        }

        // 4. Liveness: a retry the window still holds is confirmed; a sequence never stored that the docs call new is new.
        var floor = Math.Max(p.Lowest, p.ShrinkFloor);
        if (held && p.Known && e == p.WindowEpoch && s >= floor && p.High - s < Window)
        {
            if (verdict != ProducerRegistry.Verdict.Duplicate)
            {
                Fail($"4 (liveness): {what} is {verdict}, stored at {Where(recs!)} within the window (highest {p.High}, oldest known {floor})", p);
            }
        }
        else if (!held && (!p.Known || e > p.WindowEpoch || s > p.High || (p.High - s < Window && s >= floor)))
        {
            if (verdict != ProducerRegistry.Verdict.New)
            {
                Fail($"4 (liveness): {what} is {verdict}, not held and new (known {p.Known}, window epoch {p.WindowEpoch}, highest {p.High}, oldest known {floor})", p);
            }
        }
    }

    private void Sweep()
    {
        _registry.Sweep(_now);
        foreach (var p in _producers)
        {
            var next = _registry.NextSequence(p.Id);
            if (!p.Known)
            {
                if (next != 0)
                {
                    Fail($"producer {p.Id} is unknown to the model, NextSequence is {next}");
                }
            }
            else if (next == 0)
            {
                if (_now - p.LastWrite < _expiryMs)
                {
                    Fail($"the sweep forgot producer {p.Id}, idle for {_now - p.LastWrite} ms of {_expiryMs}");
                }

                Log(Op.Forgotten, p.Id, 0, 0, 0);
                var fence = p.Fence;
                p.Forget();
                p.Fence = fence; // its newest epoch stays (the model's registry keeps epochs for ever)
            }
            else if (_now - p.LastWrite >= _idleMs)
            {
                p.ShrinkFloor = Math.Max(p.ShrinkFloor, p.High); // may have shrunk to its newest (round robin: maybe later)
            }
        }
    }

    private void InitNew(Producer p)
    {
        var result = _registry.Init(p.Id, 0, (ulong)_now);
        var expected = Math.Max(p.Fence + 1, (ulong)_now);
        Log(Op.Init, p.Id, result?.Epoch ?? 0, result?.NextSequence ?? 0, 0);
        if (result != (p.NextSequence, expected))
        {
            Fail($"Init({p.Id}) gave {result}, expected ({p.NextSequence}, {expected})");
        }

        if (!p.EpochsGiven.Add(expected))
        {
            Fail($"Init({p.Id}) gave epoch {expected}, which an earlier instance holds");
        }

        p.Fence = expected;

        // Usually it numbers from the next sequence it was given; a configured id may also start again from 0.
        var r = _rng.Next(10);
        var next = r < 7 ? p.NextSequence : r < 9 ? 0 : p.NextSequence - Math.Min(p.NextSequence, (ulong)_rng.Next(1, 10));
        p.Instances.Add(new Instance(expected) { Next = next });
        if (p.Instances.Count > MaxInstances)
        {
            p.Instances.RemoveAt(0);
        }
    }

    private void Resume(Producer p, Instance inst)
    {
        inst.NeedsResume = false;
        var result = _registry.Init(p.Id, inst.Epoch, (ulong)_now);
        Log(Op.Resume, p.Id, inst.Epoch, result?.NextSequence ?? 0, result is null ? 0 : 1);
        if (inst.Epoch < p.Fence)
        {
            if (result is not null)
            {
                Fail($"Init({p.Id}, {inst.Epoch}) resumed an epoch below the newest, {p.Fence}");
            }

            return;
        }

        if (result != (p.NextSequence, inst.Epoch))
        {
            Fail($"Init({p.Id}, {inst.Epoch}) gave {result}, expected ({p.NextSequence}, {inst.Epoch})");
        }

        p.Fence = inst.Epoch;
    }

    private void CountWrite()
    {
        if (++_sinceCapture >= CaptureInterval)
        {
            Capture();
        }
    }

    private void Capture()
    {
        var entries = Array.Empty<ProducerRegistry.Entry>();
        var n = _registry.Capture(ref entries);
        _captures.Add((entries[..n], _writes));
        if (_captures.Count > 4)
        {
            _captures.RemoveAt(0);
        }

        _sinceCapture = 0;
    }

    private void Fail(string message, Producer? p = null)
    {
        var text = new StringBuilder();
        text.Append($"seed {_seed} (window {Window}, idle {_idleMs} ms, expiry {_expiryMs} ms, rescan {_rescan}, producers ");
        text.Append(string.Join(", ", _producers.Select(p => $"{p.Id}{(p.Epochs ? " with epochs" : "")}")));
        text.AppendLine($"), step {_steps.Count}, at {_now}: {message}");
        text.AppendLine("Last steps:");
        foreach (var step in _steps.Skip(Math.Max(0, _steps.Count - 80)))
        {
            text.AppendLine(step.ToString());
        }

        if (p is not null)
        {
            text.AppendLine($"Records of producer {p.Id} (epoch sequence topic@offset timestamp):");
            foreach (var r in p.All.Skip(Math.Max(0, p.All.Count - 60)))
            {
                text.AppendLine($"e{r.E} s{r.S} t{r.Topic}@{r.Offset} {r.Ts}{(r.Forgotten ? " forgotten" : "")}{(r.InRegistry ? " held" : "")}");
            }
        }

        Assert.Fail(text.ToString());
    }

    private readonly record struct What(ulong Producer, ulong Epoch, ulong Sequence)
    {
        public override string ToString() => $"producer {Producer} epoch {Epoch} sequence {Sequence}";
    }

    private static string Where(List<Rec> recs) => string.Join(", ", recs.Select(r => $"t{r.Topic}@{r.Offset}{(r.Forgotten ? " (forgotten)" : "")}"));

    private void Log(Op op, ulong producer, ulong epoch, ulong sequence, long value, int topic = -1) =>
        _steps.Add(new Step(_now, op, producer, epoch, sequence, value, topic));
}
