using FastBroker.Bench.Infrastructure;

namespace FastBroker.Bench.Tests;

/// <summary>A reporter that keeps the benchmark's info lines (which <see cref="JsonLinesReporter"/> drops) for assertions and failure messages.</summary>
internal sealed class InfoRecorder(IBenchReporter inner) : IBenchReporter
{
    public List<string> Lines { get; } = [];

    /// <summary>The lines so far, one per line.</summary>
    public string Text
    {
        get
        {
            lock (Lines)
            {
                return string.Join(Environment.NewLine, Lines);
            }
        }
    }

    public void Progress(string label, double fraction) => inner.Progress(label, fraction);

    public void Result(BenchResult result) => inner.Result(result);

    public void Info(string text)
    {
        lock (Lines)
        {
            Lines.Add(text);
        }

        inner.Info(text);
    }
}
