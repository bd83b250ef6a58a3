// How long first writes to fresh page-cache pages take here (what the journal's pre-fault thread absorbs): creates
// a file, maps it shared, writes one int per 4 KiB page, and prints the per-page distribution. Three rounds.
// Usage: dotnet run tools/page-faults.cs -- [directory=/tmp] [MiB=128]
using System.Diagnostics;
using System.IO.MemoryMappedFiles;

var directory = args.Length > 0 ? args[0] : Path.GetTempPath();
long size = (args.Length > 1 ? long.Parse(args[1]) : 128) << 20;
var path = Path.Combine(directory, $"page-faults-{Environment.ProcessId}.dat");
try
{
    for (var round = 0; round < 3; round++)
    {
        File.Delete(path);
        using (var fs = new FileStream(path, FileMode.CreateNew))
        {
            fs.SetLength(size);
        }

        using var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, size);
        using var view = file.CreateViewAccessor(0, size);
        var handle = view.SafeMemoryMappedViewHandle;
        var pages = (int)(size / 4096);
        var ticks = new long[pages];
        var started = Stopwatch.GetTimestamp();
        unsafe
        {
            byte* p = null;
            handle.AcquirePointer(ref p);
            try
            {
                for (var i = 0; i < pages; i++)
                {
                    var t = Stopwatch.GetTimestamp();
                    *(int*)(p + ((long)i * 4096)) = 1;
                    ticks[i] = Stopwatch.GetTimestamp() - t;
                }
            }
            finally
            {
                handle.ReleasePointer();
            }
        }

        var total = Stopwatch.GetElapsedTime(started);
        Array.Sort(ticks);
        double Us(long t) => t * 1e6 / Stopwatch.Frequency;
        Console.WriteLine($"round {round}: {size >> 20} MiB in {total.TotalMilliseconds:F0} ms; per page p50 {Us(ticks[pages / 2]):F1} µs, p99 {Us(ticks[pages * 99 / 100]):F1} µs, max {Us(ticks[^1]) / 1000:F1} ms; {ticks.Count(t => Us(t) > 100)} pages over 100 µs");
    }
}
finally
{
    File.Delete(path);
}
