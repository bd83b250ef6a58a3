namespace FastBroker.Engine;

/// <summary>
/// The counters of every subscription since the broker opened, per (pattern, durable name), closed subscriptions
/// included, so that the totals reported (<see cref="BrokerSnapshot.SubscriptionTotals"/>, the <c>/metrics</c>
/// <c>_total</c> series, the meter's counters) never go down when a subscription closes. Not thread-safe: the broker
/// calls it under its gate, together with its list of open subscriptions, so a snapshot counts each subscription
/// once, open or closed.
/// </summary>
/// <remarks>
/// Memory stays bounded however many distinct patterns clients subscribe to: a key is kept while a subscription with
/// it is open, and after its last one closes only while it is among the <see cref="MaxIdleKeys"/> most recently
/// closed keys. The least recently closed key beyond that is forgotten: its series ends, and if the pattern is
/// subscribed to again its counters start from 0, which Prometheus reads as a counter reset.
/// </remarks>
internal sealed class SubscriptionTotalsTable
{
    /// <summary>Keys with no open subscription kept at most: 4096 × about 150 bytes, under 1 MiB.</summary>
    public const int MaxIdleKeys = 4096;

    private readonly Dictionary<(string Pattern, string Durable), Entry> _entries = [];
    private readonly LinkedList<(string Pattern, string Durable)> _idle = []; // no open subscription, least recently closed first
    private readonly int _maxIdleKeys;

    public SubscriptionTotalsTable(int maxIdleKeys = MaxIdleKeys) => _maxIdleKeys = maxIdleKeys;

    /// <summary>A subscription with this pattern and durable name opened.</summary>
    public void Opened(string pattern, string? durableName)
    {
        var key = (pattern, durableName ?? "");
        if (!_entries.TryGetValue(key, out var e))
        {
            e = new Entry();
            _entries.Add(key, e);
        }

        if (e.IdleNode is not null)
        {
            _idle.Remove(e.IdleNode);
            e.IdleNode = null;
        }

        e.Open++;
    }

    /// <summary>A subscription opened with <see cref="Opened"/> closed with these counters: they are kept.</summary>
    public void Closed(string pattern, string? durableName, long delivered, long expired, long filtered, long missed)
    {
        var key = (pattern, durableName ?? "");
        if (!_entries.TryGetValue(key, out var e) || e.Open == 0)
        {
            return;
        }

        e.Delivered += delivered;
        e.Expired += expired;
        e.Filtered += filtered;
        e.Missed += missed;
        if (--e.Open > 0)
        {
            return;
        }

        e.IdleNode = _idle.AddLast(key);
        if (_idle.Count > _maxIdleKeys)
        {
            _entries.Remove(_idle.First!.Value);
            _idle.RemoveFirst();
        }
    }

    /// <summary>Per key, the closed subscriptions' counters plus those of the <paramref name="open"/> ones, ordered by pattern then durable name.</summary>
    public List<SubscriptionTotals> Totals(IReadOnlyList<SubscriptionSnapshot> open)
    {
        var sums = new Dictionary<(string Pattern, string Durable), (long Delivered, long Expired, long Filtered, long Missed)>(_entries.Count);
        foreach (var (key, e) in _entries)
        {
            sums[key] = (e.Delivered, e.Expired, e.Filtered, e.Missed);
        }

        foreach (var s in open)
        {
            var key = (s.Pattern, s.DurableName ?? "");
            var t = sums.GetValueOrDefault(key);
            sums[key] = (t.Delivered + s.Delivered, t.Expired + s.Expired, t.Filtered + s.Filtered, t.Missed + s.Missed);
        }

        return [.. sums
            .OrderBy(p => p.Key.Pattern, StringComparer.Ordinal).ThenBy(p => p.Key.Durable, StringComparer.Ordinal)
            .Select(p => new SubscriptionTotals(p.Key.Pattern, p.Key.Durable.Length == 0 ? null : p.Key.Durable, _entries.TryGetValue(p.Key, out var e) ? e.Open : 0, p.Value.Delivered, p.Value.Expired, p.Value.Filtered, p.Value.Missed))];
    }

    private sealed class Entry
    {
        public int Open;
        public long Delivered;
        public long Expired;
        public long Filtered;
        public long Missed;
        public LinkedListNode<(string Pattern, string Durable)>? IdleNode;
    }
}
