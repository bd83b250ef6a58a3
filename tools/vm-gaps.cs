// The machine's own interruptions, with no broker involved: N threads spin reading the clock for a few seconds and
// report every gap over 50 µs (time the thread did not run: host or guest preemption, interrupts, page faults).
// Usage: dotnet run tools/vm-gaps.cs -- [threads=1] [seconds=5]
using System.Diagnostics;

var threads = args.Length > 0 ? int.Parse(args[0]) : 1;
var seconds = args.Length > 1 ? int.Parse(args[1]) : 5;
var lines = new string[threads];
var workers = Enumerable.Range(0, threads).Select(k => new Thread(() =>
{
    var end = Stopwatch.GetTimestamp() + (seconds * Stopwatch.Frequency);
    var last = Stopwatch.GetTimestamp();
    long total = 0, max = 0;
    var count = 0;
    while (last < end)
    {
        var now = Stopwatch.GetTimestamp();
        var gapUs = (now - last) * 1_000_000 / Stopwatch.Frequency;
        if (gapUs > 50)
        {
            count++;
            total += gapUs;
            max = Math.Max(max, gapUs);
        }

        last = now;
    }

    lines[k] = $"thread {k}: {count} gaps > 50 µs in {seconds} s, {total / 1000.0:F1} ms in all ({total / (seconds * 10_000.0):F2} % of the time), longest {max / 1000.0:F1} ms";
})).ToArray();
foreach (var w in workers)
{
    w.Start();
}

foreach (var w in workers)
{
    w.Join();
}

Console.WriteLine($"{Environment.ProcessorCount} CPUs, {threads} spinning thread(s), {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
foreach (var l in lines)
{
    Console.WriteLine(l);
}
