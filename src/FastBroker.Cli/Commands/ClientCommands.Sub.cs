using System.CommandLine;
using FastBroker.Client;

namespace FastBroker.Cli.Commands;

/// <summary><c>fastbroker sub</c>: a fan-out subscription (durable or not) or a work-queue group member.</summary>
internal static partial class ClientCommands
{
    private static Command Sub()
    {
        var pattern = new Argument<string>("pattern") { Description = "Topic or pattern (orders.* one level, orders.> the rest)." };
        var from = new Option<string>("--from") { Description = "Start: latest, earliest, committed, offset:N, or time:ISO-8601.", DefaultValueFactory = _ => "latest" };
        var durable = new Option<string?>("--durable") { Description = "Durable subscription name: the position of what was printed is committed every --commit-interval seconds and when sub ends (--count, --timeout, Ctrl-C); --from committed resumes after it." };
        var commitInterval = new Option<double>("--commit-interval") { Description = "With --durable: seconds between commits of what was printed, while messages flow or once they pause (0 = after every message).", DefaultValueFactory = _ => 1.0 };
        OptionRules.AtLeast(commitInterval, 0.0);
        var group = new Option<string?>("--group") { Description = "Consume as a member of this work-queue group (acks each message) instead of a fan-out subscription." };
        var count = new Option<long>("--count", "-n") { Description = "Exit after this many messages (0 = until Ctrl-C). Stopped by SIGINT, SIGTERM or SIGHUP before them: exit 130, 143 or 129." };
        var timeout = new Option<double>("--timeout") { Description = "Exit with status 1 if no message arrives for this many seconds (0 = wait forever)." };
        OptionRules.AtLeast(count, 0L);
        OptionRules.AtLeast(timeout, 0.0);
        var format = new Option<string>("--format") { Description = "Output: payload (one line per message), full (topic@offset, headers, payload) or json.", DefaultValueFactory = _ => "payload" };
        format.AcceptOnlyFromAmong("payload", "full", "json");
        var cmd = new Command("sub", "Subscribe and print messages.") { pattern, from, durable, commitInterval, group, count, timeout, format, s_server, s_token };
        AddTls(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            if (OptionRules.OptionLikeValue(parse, pattern, "pattern") is { } refused)
            {
                Console.Error.WriteLine(refused);
                return ExitCodes.Usage;
            }

            if (!TryParseStart(parse.GetValue(from)!, out var start))
            {
                Console.Error.WriteLine($"--from '{parse.GetValue(from)}': expected latest, earliest, committed, offset:N or time:ISO-8601");
                return ExitCodes.Usage;
            }

            if (parse.GetValue(group) is not null
                && new Option[] { from, durable, commitInterval }.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false }) is { } fanOut)
            {
                // A work-queue group has no start or durable name of its own: a member takes what the group has. Ignored,
                // the option would have a member take the group's oldest job for '--from latest'.
                Console.Error.WriteLine($"{fanOut.Name}: not with --group (a group member takes the jobs where the group is; {fanOut.Name} is for a fan-out subscription)");
                return ExitCodes.Usage;
            }

            var max = parse.GetValue(count);
            var idle = parse.GetValue(timeout);
            var fmt = parse.GetValue(format)!;
            // Ctrl-C or SIGTERM ends the command as --count does: a member leaves its group (its ACKs sent first, the
            // deliveries it had not printed back to the group at once), a durable subscription commits what it printed.
            using var stop = new StopSignal(ct, secondSignalKills: true);
            using var output = new MessageOutput();
            return await RunAsync(parse, async client =>
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                var received = 0L;
                if (idle > 0)
                {
                    cts.CancelAfter(TimeSpan.FromSeconds(idle));
                }

                if (parse.GetValue(group) is { } g)
                {
                    GroupMember member;
                    try
                    {
                        member = await client.JoinGroupAsync(parse.GetValue(pattern)!, g, GroupJoinOptions.Default, cts.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        return Stopped(stop, idle, received, max);
                    }

                    await using (member.ConfigureAwait(false))
                    {
                        try
                        {
                            await foreach (var m in member.ReadAllAsync(cts.Token).ConfigureAwait(false))
                            {
                                if (!Print(output, m, fmt))
                                {
                                    return OutputClosed(received, "not acked: it goes back to the group"); // leaves the group as it returns
                                }

                                await member.AckAsync(m, CancellationToken.None).ConfigureAwait(false); // printed is done, whatever stops us now
                                if (idle > 0)
                                {
                                    cts.CancelAfter(TimeSpan.FromSeconds(idle));
                                }

                                if (++received == max)
                                {
                                    break;
                                }
                            }
                        }
                        catch (OperationCanceledException)
                        {
                            return Stopped(stop, idle, received, max);
                        }
                    }

                    return 0;
                }

                var options = SubscribeOptions.Default with { Start = start, DurableName = parse.GetValue(durable) };
                ClientSubscription subscription;
                try
                {
                    subscription = await client.CreateSubscriptionAsync(parse.GetValue(pattern)!, options, cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return Stopped(stop, idle, received, max);
                }

                await using (subscription.ConfigureAwait(false))
                {
                    var status = 0;
                    var commits = options.DurableName is null ? null : new PrintedCommits(subscription, TimeSpan.FromSeconds(parse.GetValue(commitInterval)));
                    try
                    {
                        var messages = subscription.ReadAllAsync(cts.Token).GetAsyncEnumerator(cts.Token);
                        await using (messages.ConfigureAwait(false))
                        {
                            while (commits is null ? await messages.MoveNextAsync().ConfigureAwait(false) : await commits.NextAsync(messages, cts.Token).ConfigureAwait(false))
                            {
                                var m = messages.Current;
                                if (!Print(output, m, fmt))
                                {
                                    status = OutputClosed(received, commits is null ? null : "not committed: --from committed resumes at it");
                                    break;
                                }

                                if (commits is not null)
                                {
                                    await commits.PrintedAsync(m, cts.Token).ConfigureAwait(false);
                                }

                                if (idle > 0)
                                {
                                    cts.CancelAfter(TimeSpan.FromSeconds(idle));
                                }

                                if (++received == max)
                                {
                                    break;
                                }
                            }
                        }
                    }
                    catch (OperationCanceledException)
                    {
                        status = Stopped(stop, idle, received, max);
                    }

                    if (commits is not null)
                    {
                        // What was printed is done: --from committed resumes after it. Not cancellable by the stop
                        // token (already cancelled); a second Ctrl-C ends the process if the server does not answer.
                        await commits.CommitAsync(CancellationToken.None).ConfigureAwait(false);
                    }

                    return status;
                }
            }).ConfigureAwait(false);
        });
        return cmd;
    }

    /// <summary>
    /// The exit status of a <c>sub</c> whose standard output's reader has gone (EPIPE): 141, 128 + SIGPIPE, what a shell
    /// reports for a process a broken pipe ended; the message it could not write is neither acked nor committed.
    /// </summary>
    private static int OutputClosed(long received, string? unwritten)
    {
        Console.Error.WriteLine($"sub: standard output closed (broken pipe) after {received} message(s){(unwritten is null ? "" : $"; the message it could not write is {unwritten}")}");
        return ExitCodes.BrokenPipe;
    }

    /// <summary>
    /// The exit status of a <c>sub</c> whose wait was cancelled: when told to stop (SIGINT, SIGTERM, SIGHUP), 0 if that was its
    /// only end (no <c>--count</c>), else 128 + the signal (<see cref="StopSignal.ExitCode"/>, 130, 143 or 129), since it
    /// stopped before the <paramref name="max"/> messages it was asked for; 1 when --timeout passed with no message.
    /// </summary>
    private static int Stopped(StopSignal stop, double idle, long received, long max)
    {
        if (stop.Token.IsCancellationRequested)
        {
            if (max == 0)
            {
                return 0;
            }

            Console.Error.WriteLine($"sub: stopped by {stop.Signal ?? "cancellation"} after {received} of the {max} message(s) asked for (--count)");
            return stop.ExitCode;
        }

        Console.Error.WriteLine($"sub: no message for {idle} s ({received} received)");
        return 1;
    }
}
