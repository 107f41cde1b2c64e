/// A set of servers that routes send upgraded connections to (`backends:` entries).
public struct BackendConfig: Sendable, Equatable {
    /// Unique name that routes refer to.
    public var name: String
    /// Where the servers come from.
    public var kind: Kind
    /// Time allowed for one TCP (and TLS) connect attempt.
    public var connectTimeout: Duration
    /// Time allowed for the server to answer the forwarded upgrade request.
    public var responseTimeout: Duration
    /// Re-encryption toward the servers; nil for plain TCP.
    public var tls: BackendTLSConfig?
    /// Largest frame the built-in echo server takes (it holds whole frames); larger ones are closed with 1009.
    /// Only settable with `builtin: echo`.
    public var echoMaxFrameBytes: Int
    /// How a new connection picks its server.
    public var balance: BalancePolicy = .roundRobin
    /// What `balance: hash` hashes; nil otherwise.
    public var hashKey: HashKey?
    /// Active WebSocket health checks; nil: none (no check traffic).
    public var health: HealthCheckConfig?
    /// Passive health from real attempts; nil with `passive: off`.
    public var passive: PassiveHealthConfig? = PassiveHealthConfig()
    /// A newly healthy or added server's share ramps from 0 to its weight over this long; zero: at once.
    public var slowStart: Duration = .zero
    /// Connections per second closed on a server that leaves (drained, ejected, removed by a reload).
    public var drainRate: Int = 10
    /// How often server names are resolved again (each address is a server).
    public var resolveInterval: Duration = .seconds(30)
    /// Where the backend was declared.
    public var position: ConfigPosition

    /// The servers of a backend.
    public enum Kind: Sendable, Equatable {
        /// Servers chosen by `balance`; on a connect failure the next one is tried.
        case servers([BackendServerConfig])
        /// The built-in echo server, started in-process on an ephemeral loopback port.
        case builtinEcho
    }

    static let defaultConnectTimeout = Duration.seconds(2)
    static let defaultResponseTimeout = Duration.seconds(10)
    /// 1 MiB.
    public static let defaultEchoMaxFrameBytes = 1 << 20
}

/// TLS from the proxy to a backend.
public struct BackendTLSConfig: Sendable, Equatable {
    /// PEM file of CA certificates to trust; nil trusts the system roots.
    public var caFile: String?
    /// Name sent as SNI and checked against the server's certificate; nil uses the server's host.
    public var serverName: String?
}

extension BackendConfig {
    init(node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("a backend")
        self.name = try map.required("name").string("backend name")
        let serversNode = map.optional("servers")
        let builtinNode = map.optional("builtin")
        switch (serversNode, builtinNode) {
        case (let servers?, nil):
            var addresses: [BackendServerConfig] = []
            for server in try servers.sequence("servers") {
                let entry = try Self.server(server)
                if addresses.contains(where: { $0.address == entry.address }) {
                    throw server.error("server \(entry.address) is listed twice")
                }
                addresses.append(entry)
            }
            guard !addresses.isEmpty else { throw servers.error("servers must list at least one HOST:PORT") }
            self.kind = .servers(addresses)
        case (nil, let builtin?):
            let value = try builtin.string("builtin")
            guard value == "echo" else { throw builtin.error("builtin must be 'echo', found '\(value)'") }
            self.kind = .builtinEcho
        case (.some, .some):
            throw node.error("backend '\(self.name)' has both 'servers' and 'builtin'; choose one")
        case (nil, nil):
            throw node.error("backend '\(self.name)' needs 'servers' or 'builtin: echo'")
        }
        self.connectTimeout =
            try map.optional("connect_timeout")?.duration("connect_timeout") ?? Self.defaultConnectTimeout
        self.responseTimeout =
            try map.optional("response_timeout")?.duration("response_timeout") ?? Self.defaultResponseTimeout
        if let tlsNode = map.optional("tls") {
            let tls = try tlsNode.mapping("backend tls")
            self.tls = BackendTLSConfig(
                caFile: try tls.optional("ca").map { node throws(ConfigError) in paths.resolve(try node.string("ca")) },
                serverName: try tls.optional("server_name")?.string("server_name")
            )
            try tls.finish()
            if case .builtinEcho = self.kind {
                throw tlsNode.error("the builtin echo backend speaks plain TCP; remove 'tls'")
            }
        } else {
            self.tls = nil
        }
        if let maxFrameNode = map.optional("max_frame_bytes") {
            guard case .builtinEcho = self.kind else {
                throw maxFrameNode.error("max_frame_bytes applies only to 'builtin: echo' (frame limits of routes are 'limits.max_frame_bytes')")
            }
            self.echoMaxFrameBytes = try maxFrameNode.byteSize("max_frame_bytes", in: (1 << 10)...(1 << 30))
        } else {
            self.echoMaxFrameBytes = Self.defaultEchoMaxFrameBytes
        }
        self.position = node.position
        try self.readPolicy(map, node: node)
        try map.finish()
    }

    /// `"HOST:PORT"` or `{address: "HOST:PORT", weight: N}`.
    private static func server(_ node: ConfigNode) throws(ConfigError) -> BackendServerConfig {
        if case .mapping = node.node {
            let map = try node.mapping("a backend server")
            let addressNode = try map.required("address")
            let address = try addressNode.bindAddress("a backend server")
            guard address.port != 0 else { throw addressNode.error("a backend server needs a port other than 0") }
            let weight = try map.optional("weight")?.int("weight", in: 1...1000) ?? 1
            try map.finish()
            return BackendServerConfig(address: address, weight: weight)
        }
        let address = try node.bindAddress("a backend server")
        guard address.port != 0 else { throw node.error("a backend server needs a port other than 0") }
        return BackendServerConfig(address: address, weight: 1)
    }

    /// Balancing, health and draining keys.
    private mutating func readPolicy(_ map: ConfigMapping, node: ConfigNode) throws(ConfigError) {
        let isEcho = self.kind == .builtinEcho
        for key in ["balance", "hash", "health", "passive", "slow_start", "drain_rate", "resolve_interval"] where isEcho {
            if let position = map.keyPosition(key) {
                throw position.error("\(key) applies to backends with 'servers', not to 'builtin: echo'")
            }
        }
        if let value = map.optional("balance") {
            let text = try value.string("balance")
            guard let policy = BalancePolicy(rawValue: text) else {
                throw value.error("balance must be round_robin, least_connections or hash, found '\(text)'")
            }
            self.balance = policy
        }
        if let hashNode = map.optional("hash") {
            guard self.balance == .hash else { throw hashNode.error("hash applies only with 'balance: hash'") }
            let hash = try hashNode.mapping("hash")
            let keyNode = try hash.required("key")
            let text = try keyNode.string("key")
            guard let key = HashKey.parse(text) else {
                throw keyNode.error("hash key must be subject, client_ip, header:NAME, cookie:NAME or query:NAME, found '\(text)'")
            }
            self.hashKey = key
            try hash.finish()
        } else if self.balance == .hash {
            throw node.error("balance: hash needs 'hash: {key: subject | client_ip | header:NAME | cookie:NAME | query:NAME}'")
        }
        self.health = try map.optional("health").map { node throws(ConfigError) in try HealthCheckConfig(node: node) }
        if let value = map.optional("passive") { self.passive = try PassiveHealthConfig.parse(value) }
        if let value = map.optional("slow_start") { self.slowStart = try value.duration("slow_start", allowZero: true) }
        if let value = map.optional("drain_rate") { self.drainRate = try value.int("drain_rate", in: 1...100_000) }
        if let value = map.optional("resolve_interval") { self.resolveInterval = try value.duration("resolve_interval") }
    }
}
