using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace Plugboard.Tests.Infrastructure;

/// <summary>
/// Debian's chromium (installed by ./test, never downloaded) driven through Playwright, one browser for a test class;
/// each test opens its own context (its own cookies). Screenshots go to the test results folder.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public static string ExecutablePath => Environment.GetEnvironmentVariable("PLUGBOARD_TEST_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    private IPlaywright? _playwright;
    public IBrowser Browser { get; private set; } = null!;

    public static string ScreenshotFolder
    {
        get
        {
            var results = Environment.GetEnvironmentVariable("PLUGBOARD_TEST_RESULTS") is { Length: > 0 } folder ? folder : Path.Combine(Path.GetTempPath(), "plugboard-test-results");
            var screenshots = Path.Combine(results, "screenshots");
            Directory.CreateDirectory(screenshots);
            return screenshots;
        }
    }

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"No browser at {ExecutablePath}: ./test installs Debian's chromium (apt-get install chromium), or set PLUGBOARD_TEST_CHROMIUM.");
        }
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }
        _playwright?.Dispose();
    }

    /// <summary>A fresh browser context (no cookies) on the server, at a laptop's or a phone's size.</summary>
    public async Task<IPage> NewPageAsync(Uri baseAddress, bool phone = false)
    {
        var context = await Browser.NewContextAsync(new()
        {
            BaseURL = baseAddress.ToString(),
            ViewportSize = phone ? new() { Width = 390, Height = 844 } : new() { Width = 1366, Height = 900 },
            IsMobile = phone,
            HasTouch = phone,
        });
        context.SetDefaultTimeout(30_000);
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                errors.Add(message.Text);
            }
        };
        page.SetExtraInfo(errors);
        return page;
    }

    public static Task ScreenshotAsync(IPage page, string name) =>
        page.ScreenshotAsync(new() { Path = Path.Combine(ScreenshotFolder, name + ".png"), FullPage = true });

    /// <summary>axe-core over the page: no serious or critical accessibility violation.</summary>
    public static async Task AssertAccessibleAsync(IPage page)
    {
        var results = await page.RunAxe();
        var serious = results.Violations.Where(v => v.Impact is "serious" or "critical")
            .Select(v => $"{v.Id} ({v.Impact}): {v.Help} — {string.Join("; ", v.Nodes.Select(n => string.Join(" ", n.Target)))}").ToList();
        Assert.True(serious.Count == 0, $"{page.Url}: " + string.Join("\n", serious));
    }
}

internal static class PageErrors
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IPage, List<string>> Errors = new();

    public static void SetExtraInfo(this IPage page, List<string> errors) => Errors.AddOrUpdate(page, errors);

    /// <summary>What the page's console reported as errors (a CSP violation, a script failure).</summary>
    public static IReadOnlyList<string> ConsoleErrors(this IPage page) => Errors.TryGetValue(page, out var errors) ? errors : [];
}
