using System.Net;
using System.Net.Sockets;

namespace Plugboard.Engine.Net;

public sealed record SsrfOptions
{
    /// <summary>CIDRs that are reachable even though they are private/loopback (development and tests only).</summary>
    public IReadOnlyList<IPNetwork> Allow { get; init; } = [];

    /// <summary>
    /// An egress proxy the operator configured explicitly (PLUGBOARD_OUTBOUND_PROXY). Without one, no proxy is ever used:
    /// HTTP_PROXY/HTTPS_PROXY/ALL_PROXY in the environment are ignored, since a proxy would hide the target from the
    /// connect-time check. With one, each target's addresses are checked before the request is handed to the proxy.
    /// </summary>
    public Uri? Proxy { get; init; }

    /// <summary>Called with the host, the address it resolved to and why it was refused: for the operator's log only
    /// (the tenant's error does not name internal addresses).</summary>
    public Action<string, IPAddress, string>? OnBlocked { get; init; }

    /// <summary>Parses a comma/space separated CIDR list such as the PLUGBOARD_OUTBOUND_ALLOW variable (a bare address
    /// means that one address).</summary>
    public static SsrfOptions FromList(string? cidrs, Uri? proxy = null) => new()
    {
        Allow = [.. (cidrs ?? "").Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseCidr)],
        Proxy = proxy,
    };

    public static IPNetwork ParseCidr(string cidr) =>
        cidr.Contains('/', StringComparison.Ordinal) ? IPNetwork.Parse(cidr) : new IPNetwork(IPAddress.Parse(cidr), IPAddress.Parse(cidr).AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
}

/// <summary>
/// Outbound request refused because the destination resolves to a non-public address. The message names the host
/// only: which address it resolved to (and why that is refused) is for the operator's log, through
/// <see cref="SsrfOptions.OnBlocked"/>, never for the tenant.
/// </summary>
public sealed class SsrfBlockedException(string host, IPAddress address, string reason)
    : Exception($"Outbound request to '{host}' refused: the destination address is not allowed (only public addresses are reachable). " +
                "An operator can find the address in the server log and allow its range with PLUGBOARD_OUTBOUND_ALLOW.")
{
    public string Host { get; } = host;
    public IPAddress Address { get; } = address;
    public string Reason { get; } = reason;
}

/// <summary>
/// Builds the outbound handler: DNS is resolved here, every resolved address is checked at connect time (so DNS
/// rebinding cannot slip through), and the socket connects to the checked address, never to the name again.
/// </summary>
public static class SsrfGuard
{
    private static readonly (IPNetwork Network, string Reason)[] Blocked =
    [
        (IPNetwork.Parse("169.254.169.254/32"), "cloud metadata endpoint"),
        (IPNetwork.Parse("fd00:ec2::254/128"), "cloud metadata endpoint"),
        (IPNetwork.Parse("0.0.0.0/8"), "unspecified / 'this network'"),
        (IPNetwork.Parse("10.0.0.0/8"), "private network"),
        (IPNetwork.Parse("100.64.0.0/10"), "carrier-grade NAT"),
        (IPNetwork.Parse("127.0.0.0/8"), "loopback"),
        (IPNetwork.Parse("169.254.0.0/16"), "link-local"),
        (IPNetwork.Parse("172.16.0.0/12"), "private network"),
        (IPNetwork.Parse("192.0.0.0/24"), "IETF protocol assignments"),
        (IPNetwork.Parse("192.0.2.0/24"), "documentation range"),
        (IPNetwork.Parse("192.88.99.0/24"), "6to4 relay"),
        (IPNetwork.Parse("192.168.0.0/16"), "private network"),
        (IPNetwork.Parse("198.18.0.0/15"), "benchmarking range"),
        (IPNetwork.Parse("198.51.100.0/24"), "documentation range"),
        (IPNetwork.Parse("203.0.113.0/24"), "documentation range"),
        (IPNetwork.Parse("224.0.0.0/4"), "multicast"),
        (IPNetwork.Parse("240.0.0.0/4"), "reserved / broadcast"),
        (IPNetwork.Parse("::/128"), "unspecified"),
        (IPNetwork.Parse("::1/128"), "loopback"),
        (IPNetwork.Parse("::/96"), "IPv4-compatible IPv6"),
        (IPNetwork.Parse("100::/64"), "discard prefix"),
        (IPNetwork.Parse("2001:db8::/32"), "documentation range"),
        (IPNetwork.Parse("2001::/23"), "IETF protocol assignments"),
        (IPNetwork.Parse("fc00::/7"), "unique local address"),
        (IPNetwork.Parse("fe80::/10"), "link-local"),
        (IPNetwork.Parse("fec0::/10"), "site-local"),
        (IPNetwork.Parse("ff00::/8"), "multicast"),
    ];

    private static readonly IPNetwork Nat64 = IPNetwork.Parse("64:ff9b::/96");
    private static readonly IPNetwork Nat64LocalUse = IPNetwork.Parse("64:ff9b:1::/48");
    private static readonly IPNetwork SixToFour = IPNetwork.Parse("2002::/16");
    private static readonly IPNetwork Ipv4Translated = IPNetwork.Parse("::ffff:0:0:0/96");

    /// <summary>
    /// The outbound handler. Without <see cref="SsrfOptions.Proxy"/> it never uses a proxy (the environment's are
    /// ignored) and checks every address at connect time; with one, a check of the target's addresses runs before the
    /// request reaches the proxy, and the socket may connect to the proxy only.
    /// </summary>
    public static HttpMessageHandler CreateHandler(SsrfOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            AutomaticDecompression = DecompressionMethods.All,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            UseProxy = false,
        };
        if (options.Proxy is not { } proxy)
        {
            handler.ConnectCallback = (context, ct) => ConnectAsync(context.DnsEndPoint, options, ct);
            return handler;
        }
        handler.UseProxy = true;
        handler.Proxy = new WebProxy(proxy) { BypassProxyOnLocal = false };
        handler.ConnectCallback = (context, ct) =>
            string.Equals(context.DnsEndPoint.Host, proxy.Host, StringComparison.OrdinalIgnoreCase) && context.DnsEndPoint.Port == proxy.Port
                ? ConnectAsync(context.DnsEndPoint, options with { Allow = [.. options.Allow, .. ProxyNetworks(proxy)] }, ct)
                : throw new HttpRequestException($"Refusing to connect to '{context.DnsEndPoint.Host}' directly: outbound requests go through the configured proxy.");
        return new CheckTargetBeforeProxy(options) { InnerHandler = handler };
    }

    private static IEnumerable<IPNetwork> ProxyNetworks(Uri proxy) =>
        IPAddress.TryParse(proxy.Host.Trim('[', ']'), out var literal) ? [new IPNetwork(literal, literal.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)]
        : Dns.GetHostAddresses(proxy.Host).Select(a => new IPNetwork(a, a.AddressFamily == AddressFamily.InterNetwork ? 32 : 128));

    /// <summary>With an explicit proxy the socket reaches only the proxy, so the target is resolved and checked here.
    /// (The proxy resolves the name again: an operator who needs rebinding-proof egress makes the proxy check too.)</summary>
    private sealed class CheckTargetBeforeProxy(SsrfOptions options) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var uri = request.RequestUri!;
            await ResolveCheckedAsync(uri.IdnHost, options, cancellationToken).ConfigureAwait(false);
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Why an address is refused, or null when it may be reached.</summary>
    public static string? Check(IPAddress address, SsrfOptions options)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(options);
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && Nat64LocalUse.Contains(address))
        {
            return "local-use NAT64 (RFC 8215)";
        }
        var candidates = new List<IPAddress> { address };
        if (address.IsIPv4MappedToIPv6)
        {
            candidates.Add(address.MapToIPv4());
        }
        else if (address.AddressFamily == AddressFamily.InterNetworkV6 && (Nat64.Contains(address) || Ipv4Translated.Contains(address)))
        {
            candidates.Add(new IPAddress(address.GetAddressBytes()[12..16]));
        }
        else if (address.AddressFamily == AddressFamily.InterNetworkV6 && SixToFour.Contains(address))
        {
            candidates.Add(new IPAddress(address.GetAddressBytes()[2..6])); // 2002:AABB:CCDD::/48 carries A.B.C.D
        }
        if (candidates.Any(a => options.Allow.Any(n => n.BaseAddress.AddressFamily == a.AddressFamily && n.Contains(a))))
        {
            return null;
        }
        foreach (var candidate in candidates)
        {
            if (candidate.Equals(IPAddress.Broadcast))
            {
                return "broadcast";
            }
            foreach (var (network, reason) in Blocked)
            {
                if (network.BaseAddress.AddressFamily == candidate.AddressFamily && network.Contains(candidate))
                {
                    return candidate.Equals(address) ? reason : $"IPv4 {candidate} embedded in IPv6: {reason}";
                }
            }
        }
        return null;
    }

    /// <summary>Resolves a host once and checks every address it has: one refused address refuses the host.</summary>
    private static async ValueTask<IPAddress[]> ResolveCheckedAsync(string host, SsrfOptions options, CancellationToken ct)
    {
        host = host.Trim('[', ']');
        IPAddress[] addresses = IPAddress.TryParse(host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, ct).ConfigureAwait(false);
        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound);
        }
        foreach (var address in addresses)
        {
            if (Check(address, options) is { } reason)
            {
                options.OnBlocked?.Invoke(host, address, reason);
                throw new SsrfBlockedException(host, address, reason);
            }
        }
        return addresses;
    }

    private static async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, SsrfOptions options, CancellationToken ct)
    {
        var addresses = await ResolveCheckedAsync(endpoint.Host, options, ct).ConfigureAwait(false);
        Exception? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, endpoint.Port), ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw last ?? new SocketException((int)SocketError.HostUnreachable);
    }
}
