namespace FastBroker.Ring.Internal;

/// <summary>
/// Start and shutdown notification with the exception policy applied, shared by <c>BatchEventProcessor</c> and
/// <c>WorkProcessor</c>. Returns the fatal exception (one the exception handler rethrew), or null.
/// </summary>
internal static class Lifecycle
{
    public static Exception? NotifyStart<THandler, T>(ref THandler handler, IExceptionHandler<T> exceptionHandler)
        where THandler : ILifecycleHandler
    {
        try
        {
            handler.OnStart();
            return null;
        }
        catch (Exception ex)
        {
            try
            {
                exceptionHandler.HandleOnStartException(ex);
                return null;
            }
            catch (Exception fatal)
            {
                return fatal;
            }
        }
    }

    public static Exception? NotifyShutdown<THandler, T>(ref THandler handler, IExceptionHandler<T> exceptionHandler)
        where THandler : ILifecycleHandler
    {
        try
        {
            handler.OnShutdown();
            return null;
        }
        catch (Exception ex)
        {
            try
            {
                exceptionHandler.HandleOnShutdownException(ex);
                return null;
            }
            catch (Exception fatal)
            {
                return fatal;
            }
        }
    }
}
