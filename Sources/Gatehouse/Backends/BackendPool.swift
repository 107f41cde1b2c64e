import NIOCore
import NIOSSL
import Synchronization

/// The servers of one backend, ready to connect to: addresses, timeouts, TLS context and the round-robin cursor.
final class BackendPool: Sendable {
    /// The backend's name.
    let name: String
    /// Servers, tried round robin.
    let servers: [BindAddress]
    /// Per-attempt TCP (and TLS) connect timeout.
    let connectTimeout: TimeAmount
    /// Time allowed for the upgrade answer.
    let responseTimeout: TimeAmount
    /// TLS toward the servers, with the name to send and verify.
    let tls: (context: NIOSSLContext, serverName: String?)?
    /// Servers given as IP literals, resolved once: connecting to them needs no resolver and no Happy Eyeballs.
    let literalAddresses: [BindAddress: SocketAddress]
    private let cursor = Atomic<Int>(0)

    init(name: String, servers: [BindAddress], connectTimeout: Duration, responseTimeout: Duration, tls: (NIOSSLContext, String?)?) {
        self.name = name
        self.servers = servers
        self.connectTimeout = TimeAmount(connectTimeout)
        self.responseTimeout = TimeAmount(responseTimeout)
        self.tls = tls.map { (context: $0.0, serverName: $0.1) }
        var literals: [BindAddress: SocketAddress] = [:]
        for server in servers {
            if let address = try? SocketAddress(ipAddress: server.host, port: server.port) { literals[server] = address }
        }
        self.literalAddresses = literals
    }

    /// The servers in the order to try them for one request: round robin, the rest as fallbacks.
    func attemptOrder() -> [BindAddress] {
        guard self.servers.count > 1 else { return self.servers }
        let start = self.cursor.add(1, ordering: .relaxed).oldValue
        let first = ((start % self.servers.count) + self.servers.count) % self.servers.count
        return Array(self.servers[first...] + self.servers[..<first])
    }
}

extension TimeAmount {
    /// Converts a Swift `Duration` (as parsed from the configuration).
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
