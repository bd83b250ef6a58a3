using System.Diagnostics;
using System.Net;
using System.Text.Json;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>What the admin role-check tests ask a node's admin port and read in its answers (<c>status</c>, <c>reason</c>).</summary>
internal static class AdminChecks
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(30) };

    internal static string? Reason(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("reason", out var reason) ? reason.GetString() : null;
    }

    internal static string? Status(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("status").GetString();
    }

    internal static async Task<string> GetAsync(string admin, string path, HttpStatusCode expected)
    {
        var (status, contentType, body) = await RequestAsync(admin, path);
        Assert.True(status == expected, $"GET {path}: {(int)status} {body}, expected {(int)expected}");
        Assert.Equal("application/json", contentType);
        return body;
    }

    // Polls until the answer has the expected code and body (the roles settle in the background), with a deadline.
    internal static async Task<string> WaitForAsync(string admin, string path, HttpStatusCode expected, string because, Func<string, bool>? body = null)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var (status, contentType, text) = await RequestAsync(admin, path);
            if (status == expected && (body is null || body(text)))
            {
                Assert.Equal("application/json", contentType);
                return text;
            }

            if (deadline.Elapsed > Eventually.DefaultTimeout)
            {
                throw new TimeoutException($"{because}: GET {path} still {(int)status} {text} after {Eventually.DefaultTimeout.TotalSeconds} s, expected {(int)expected}{(body is null ? "" : " and a body as described")}");
            }

            await Task.Delay(20); // polling interval of a condition with a deadline
        }
    }

    internal static async Task<(HttpStatusCode Status, string? ContentType, string Body)> RequestAsync(string admin, string path)
    {
        using var response = await s_http.GetAsync(new Uri($"http://{admin}{path}"));
        return (response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync());
    }
}
