namespace FastBroker.Bench.Infrastructure;

/// <summary>Where benchmark progress and results go: a human table (the CLI) or JSON lines.</summary>
public interface IBenchReporter
{
    /// <summary>Progress for humans: what is running now and how far along (0..1). Ignored in JSON mode.</summary>
    void Progress(string label, double fraction);

    /// <summary>One finished result line.</summary>
    void Result(BenchResult result);

    /// <summary>A remark for humans (e.g. which wait strategy a scenario used and why). Ignored in JSON mode.</summary>
    void Info(string text);
}
