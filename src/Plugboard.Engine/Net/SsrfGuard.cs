using System.Net;
using System.Net.Sockets;

namespace Plugboard.Engine.Net;

public sealed record SsrfOptions
{
    /// <summary>CIDRs that are reachable even though they are private/loopback (development and tests only).</summary>
    public IReadOnlyList<IPNetwork> Allow { get; init; } = [];

    /// <summary>Parses a comma/space separated CIDR list such as the PLUGBOARD_OUTBOUND_ALLOW variable.</summary>
    public static SsrfOptions FromList(string? cidrs) => new()
    {
        Allow = [.. (cidrs ?? "").Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseCidr)],
    };

    public static IPNetwork ParseCidr(string cidr) =>
        cidr.Contains('/', StringComparison.Ordinal) ? IPNetwork.Parse(cidr) : new IPNetwork(IPAddress.Parse(cidr), IPAddress.Parse(cidr).AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
}

/// <summary>Outbound request refused because the destination resolves to a non-public address.</summary>
public sealed class SsrfBlockedException(string host, IPAddress address, string reason)
    : Exception($"Outbound request to '{host}' refused: it resolves to {address} ({reason}). " +
                $"Only public addresses are reachable; in development allow it with PLUGBOARD_OUTBOUND_ALLOW={address}/{(address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)}.")
{
    public string Host { get; } = host;
    public IPAddress Address { get; } = address;
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

    public static SocketsHttpHandler CreateHandler(SsrfOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            AutomaticDecompression = DecompressionMethods.All,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            ConnectCallback = (context, ct) => ConnectAsync(context.DnsEndPoint, options, ct),
        };
    }

    /// <summary>Why an address is refused, or null when it may be reached.</summary>
    public static string? Check(IPAddress address, SsrfOptions options)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(options);
        var candidates = new List<IPAddress> { address };
        if (address.IsIPv4MappedToIPv6)
        {
            candidates.Add(address.MapToIPv4());
        }
        else if (address.AddressFamily == AddressFamily.InterNetworkV6 && Nat64.Contains(address))
        {
            var bytes = address.GetAddressBytes();
            candidates.Add(new IPAddress(bytes[12..16]));
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

    private static async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, SsrfOptions options, CancellationToken ct)
    {
        var host = endpoint.Host.Trim('[', ']');
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
                throw new SsrfBlockedException(host, address, reason);
            }
        }
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
