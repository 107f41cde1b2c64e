/// One `servers` entry: `"HOST:PORT"` or `{address: "HOST:PORT", weight: N}`.
public struct BackendServerConfig: Sendable, Equatable {
    public var address: BindAddress
    /// Share of new connections relative to the other servers (1–1000, default 1).
    public var weight: Int
}

/// How a backend picks the server for a new connection (`balance`).
public enum BalancePolicy: String, Sendable, Equatable, CaseIterable {
    case roundRobin = "round_robin"
    /// The server with the fewest live relayed connections relative to its weight.
    case leastConnections = "least_connections"
    /// A consistent-hash ring (Maglev) over `hash.key`.
    case hash
}

/// What `balance: hash` hashes (`hash: {key: …}`).
public enum HashKey: Sendable, Equatable, CustomStringConvertible {
    case subject
    case clientIP
    case header(String)
    case cookie(String)
    case query(String)

    public var description: String {
        switch self {
        case .subject: return "subject"
        case .clientIP: return "client_ip"
        case .header(let name): return "header:\(name)"
        case .cookie(let name): return "cookie:\(name)"
        case .query(let name): return "query:\(name)"
        }
    }

    static func parse(_ text: String) -> HashKey? {
        switch text {
        case "subject": return .subject
        case "client_ip": return .clientIP
        default:
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty, HTTPToken.isToken(parts[1]) else { return nil }
            switch parts[0] {
            case "header": return .header(parts[1].lowercased())
            case "cookie": return .cookie(parts[1])
            case "query": return .query(parts[1])
            default: return nil
            }
        }
    }
}

/// Active WebSocket health checks (`health:`): a real upgrade to `path`, a ping answered by a pong, a close 1000.
public struct HealthCheckConfig: Sendable, Equatable {
    public var interval: Duration = .seconds(10)
    public var timeout: Duration = .seconds(2)
    /// Passed checks in a row that readmit an ejected server.
    public var rise: Int = 2
    /// Failed checks in a row that eject a server.
    public var fall: Int = 3
    public var path: String = "/"
}

/// Passive health (`passive:`): `failures` failed attempts (connect failures, malformed or 5xx upgrade answers)
/// within `window` eject a server for `eject`.
public struct PassiveHealthConfig: Sendable, Equatable {
    public var failures: Int = 5
    public var window: Duration = .seconds(10)
    public var eject: Duration = .seconds(30)
}

extension HealthCheckConfig {
    init(node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping("health")
        self.init()
        if let value = map.optional("interval") { self.interval = try value.duration("interval") }
        if let value = map.optional("timeout") { self.timeout = try value.duration("timeout") }
        if let value = map.optional("rise") { self.rise = try value.int("rise", in: 1...100) }
        if let value = map.optional("fall") { self.fall = try value.int("fall", in: 1...100) }
        if let value = map.optional("path") {
            let path = try value.string("path")
            guard path.hasPrefix("/"), path.utf8.count <= 2048, path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw value.error("health path must start with '/' and hold visible ASCII only, found '\(path)'")
            }
            self.path = path
        }
        guard self.timeout < self.interval else {
            throw node.error("health timeout (\(self.timeout)) must be shorter than its interval (\(self.interval))")
        }
        try map.finish()
    }
}

extension PassiveHealthConfig {
    /// `passive: off`, or a mapping over the defaults.
    static func parse(_ node: ConfigNode) throws(ConfigError) -> PassiveHealthConfig? {
        if case .scalar(let scalar) = node.node, scalar.string == "off" { return nil }
        let map = try node.mapping("passive")
        var config = PassiveHealthConfig()
        if let value = map.optional("failures") { config.failures = try value.int("failures", in: 1...1000) }
        if let value = map.optional("window") { config.window = try value.duration("window") }
        if let value = map.optional("eject") { config.eject = try value.duration("eject") }
        try map.finish()
        return config
    }
}
