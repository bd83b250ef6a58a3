using System.Runtime.ExceptionServices;

namespace FastBroker.Ring.Internal;

/// <summary>Logs, then either rethrows (halting the processor) or returns (skipping the event).</summary>
internal sealed class LoggingExceptionHandler<T>(Action<string>? log, bool halt) : IExceptionHandler<T>
{
    private readonly Action<string> _log = log ?? (static line => Console.Error.WriteLine(line));

    public void HandleEventException(Exception exception, long sequence, T data)
    {
        _log($"ring: handler failed at sequence {sequence}{(halt ? ", halting" : ", skipping the event")}: {exception}");
        if (halt)
        {
            ExceptionDispatchInfo.Throw(exception);
        }
    }

    public void HandleOnStartException(Exception exception)
        => _log($"ring: handler start callback failed: {exception}");

    public void HandleOnShutdownException(Exception exception)
        => _log($"ring: handler shutdown callback failed: {exception}");
}
