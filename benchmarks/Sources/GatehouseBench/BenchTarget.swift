import Gatehouse
import NIOCore

/// The WebSocket endpoint under test, parsed from a `ws://` or `wss://` URL.
///
/// Only loopback hosts are accepted: these tools generate heavy traffic and must never aim it at another machine.
struct BenchTarget: Sendable, CustomStringConvertible {
    /// Host and port to connect to (the proxy's own parser, so both sides agree on `[v6]:port` syntax).
    var address: BindAddress
    /// Request path sent in the upgrade request.
    var path: String
    /// Whether to speak TLS (`wss://`).
    var tls: Bool

    /// Errors a URL can have.
    enum ParseError: Error, CustomStringConvertible {
        case scheme(String)
        case authority(String)
        case notLoopback(String)

        var description: String {
            switch self {
            case .scheme(let url): "'\(url)' must start with ws:// or wss://"
            case .authority(let url): "'\(url)' must name HOST:PORT, e.g. ws://127.0.0.1:18080/echo"
            case .notLoopback(let host): "'\(host)' is not a loopback address; only 127.0.0.0/8, ::1 and localhost are allowed"
            }
        }
    }

    init(url: String) throws(ParseError) {
        let rest: Substring
        if url.hasPrefix("ws://") {
            self.tls = false
            rest = url.dropFirst("ws://".count)
        } else if url.hasPrefix("wss://") {
            self.tls = true
            rest = url.dropFirst("wss://".count)
        } else {
            throw .scheme(url)
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let address = BindAddress(parsing: String(rest[..<slash])), address.port != 0 else {
            throw .authority(url)
        }
        guard address.isLoopback else { throw .notLoopback(address.host) }
        self.address = address
        self.path = slash == rest.endIndex ? "/" : String(rest[slash...])
    }

    /// The `Host` header value.
    var hostHeader: String { self.address.description }

    /// SNI is only sent for names: RFC 6066 forbids IP literals in it.
    var serverName: String? {
        self.address.host.allSatisfy({ $0.isNumber || $0 == "." || $0 == ":" }) ? nil : self.address.host
    }

    var description: String {
        "\(self.tls ? "wss" : "ws")://\(self.address)\(self.path)"
    }

    /// The socket address to connect to, resolved once: connecting by host name would run a resolver and Happy
    /// Eyeballs on every connection, which is client cost (and latency) that has nothing to do with the server
    /// under test. `localhost` is resolved by the system; whatever it says, traffic goes to loopback or nowhere.
    func loopbackSocketAddress() throws -> SocketAddress {
        let address = try SocketAddress.makeAddressResolvingHost(self.address.host, port: self.address.port)
        guard let ip = address.ipAddress, ip.hasPrefix("127.") || ip == "::1" else {
            throw ParseError.notLoopback("\(self.address.host) (resolves to \(address))")
        }
        return address
    }
}
