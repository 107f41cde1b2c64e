import NIOCore
import NIOSSL
import Synchronization

/// The servers of one backend, ready to connect to: the configured entries, timeouts, TLS context, balancing
/// policy and the backend's ``BackendRuntime`` (live counts, health, drains, resolved addresses).
///
/// A value: ``planned(key:now:)`` returns a copy carrying the attempt order chosen for one request, which
/// ``BackendConnector`` reads through ``attemptOrder()``. The balancing state (round-robin weights, the Maglev
/// table) is shared by every copy of one generation.
struct BackendPool: Sendable {
    /// The backend's name.
    let name: String
    /// Servers as configured (host names unresolved), with weights.
    let entries: [BackendServerConfig]
    /// How a new connection picks its server.
    let balance: BalancePolicy
    /// What `balance: hash` hashes.
    let hashKey: HashKey?
    /// A newly eligible server's share ramps up over this long; zero: at once.
    let slowStart: TimeAmount
    /// Connections per second closed on a leaving server.
    let drainRate: Int
    /// How often host names are resolved again.
    let resolveInterval: TimeAmount
    /// Per-attempt TCP (and TLS) connect timeout.
    let connectTimeout: TimeAmount
    /// Time allowed for the upgrade answer.
    let responseTimeout: TimeAmount
    /// TLS toward the servers, with the name to send and verify.
    let tls: (context: NIOSSLContext, serverName: String?)?
    /// Socket addresses of servers given (or resolved) as IP literals: connecting to them needs no resolver.
    let literalAddresses = LiteralAddresses()
    /// Server state, shared by every generation of this backend.
    let runtime: BackendRuntime
    private let selection: Selection
    /// The order chosen for one request by ``planned(key:now:)``; nil: chosen when asked.
    private var plan: [BindAddress]?

    /// Round-robin weights and the Maglev table of one generation, behind one lock (taken once per handshake).
    final class Selection: Sendable {
        let selector = Mutex(ServerSelector())
    }

    init(
        config: BackendConfig, servers: [BackendServerConfig], tls: (NIOSSLContext, String?)?, runtime: BackendRuntime
    ) {
        self.name = config.name
        self.entries = servers
        self.balance = config.balance
        self.hashKey = config.hashKey
        self.slowStart = TimeAmount(config.slowStart)
        self.drainRate = config.drainRate
        self.resolveInterval = TimeAmount(config.resolveInterval)
        self.connectTimeout = TimeAmount(config.connectTimeout)
        self.responseTimeout = TimeAmount(config.responseTimeout)
        self.tls = tls.map { (context: $0.0, serverName: $0.1) }
        self.runtime = runtime
        self.selection = Selection()
    }

    /// A round-robin pool over `servers` (weight 1), with a runtime of its own that lists them (tests).
    init(name: String, servers: [BindAddress], connectTimeout: Duration, responseTimeout: Duration, tls: (NIOSSLContext, String?)?) {
        var config = BackendConfig(
            name: name, kind: .servers(servers.map { BackendServerConfig(address: $0, weight: 1) }),
            connectTimeout: connectTimeout, responseTimeout: responseTimeout, tls: nil,
            echoMaxFrameBytes: BackendConfig.defaultEchoMaxFrameBytes, position: ConfigPosition(file: "-", line: 1, column: 1)
        )
        config.passive = nil
        let runtime = BackendRuntime(name: name)
        _ = runtime.update(servers: servers.map { ($0, 1) }, config: config)
        self.init(config: config, servers: servers.map { BackendServerConfig(address: $0, weight: 1) }, tls: tls, runtime: runtime)
    }

    /// The configured server addresses (names unresolved).
    var servers: [BindAddress] { self.entries.map(\.address) }

    /// Entries whose host is a name to resolve (not an IP literal).
    var namedEntries: [BackendServerConfig] {
        self.entries.filter { !BackendServerSet.isIPLiteral($0.address.host) }
    }

    /// This pool with the attempt order for one request fixed: `key` is the request's hash key (nil when the
    /// backend does not hash or the request lacks it).
    func planned(key: String?, now: NIODeadline = .now()) -> BackendPool {
        var copy = self
        copy.plan = self.chooseOrder(key: key, now: now)
        return copy
    }

    /// The servers in the order to try them for one request: the balancing choice first, then the other eligible
    /// servers as failover. Never empty.
    func attemptOrder() -> [BindAddress] {
        self.plan ?? self.chooseOrder(key: nil, now: .now())
    }

    private func chooseOrder(key: String?, now: NIODeadline) -> [BindAddress] {
        let servers = self.runtime.servers
        let order = self.selection.selector.withLock { selector in
            selector.order(
                servers.map { ServerSelector.Candidate($0, now: now) }, policy: self.balance, key: key,
                slowStart: self.slowStart, now: now
            )
        }
        // Nothing known yet (names not resolved): try the entries as configured, the connector resolves them.
        return order.isEmpty ? self.entries.map(\.address) : order
    }
}

/// Socket addresses of IP-literal servers, parsed when asked (cheap, no resolver): a subscript like a dictionary's.
struct LiteralAddresses: Sendable {
    subscript(_ server: BindAddress) -> SocketAddress? {
        guard BackendServerSet.isIPLiteral(server.host) else { return nil }
        return try? SocketAddress(ipAddress: server.host, port: server.port)
    }
}

extension TimeAmount {
    /// Converts a Swift `Duration` (as parsed from the configuration).
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
