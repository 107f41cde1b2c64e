import Foundation

/// Cluster mode (`cluster:`): the nodes share a PostgreSQL database for the connection registry, kicks,
/// revocations, fleet-wide limits, pushes and channels. Absent: a single instance that needs no database.
public struct ClusterConfig: Sendable, Equatable {
    /// What a handshake that needs the store does while the store is unreachable.
    public enum StoreErrorPolicy: String, Sendable, Equatable {
        /// Serve on local counts (a node never admits more than its own limits allow).
        case open
        /// Refuse handshakes of `scope: cluster` routes with 503.
        case closed
    }

    /// This node's name, unique in the fleet: the prefix of cluster-wide connection ids.
    public var node: String
    /// Environment variable holding the `postgres://` URL (never logged: it carries the password).
    public var urlEnv: String
    /// How often the node says it is alive; a node silent for three heartbeats is dead.
    public var heartbeat: Duration
    public var onStoreError: StoreErrorPolicy
    /// Longest wait for the store on a handshake (a fleet-wide lease) before `on_store_error` applies.
    public var storeTimeout: Duration
    /// Where the section was written.
    public var position: ConfigPosition

    /// A node is dead after this much silence.
    public var liveWithin: Duration { self.heartbeat * 3 }

    static let defaultHeartbeat = Duration.seconds(2)
    static let defaultStoreTimeout = Duration.seconds(1)

    /// Whether two sections (or their absence) configure the same thing, wherever they are written.
    static func sameSettings(_ a: ClusterConfig?, _ b: ClusterConfig?) -> Bool {
        guard var a, let b else { return a == nil && b == nil }
        a.position = b.position
        return a == b
    }

    /// `hostname-pid`, made a valid node name.
    static func defaultNode() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "gatehouse"
        let cleaned = String(host.map { Self.isNodeCharacter($0) ? $0 : "-" }.prefix(48))
        return "\(cleaned.isEmpty ? "gatehouse" : cleaned)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    static func isNodeCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || character == "-" || character == "_" || character == ".")
    }

    /// Node names go into connection ids (`node:42`), URLs and SQL parameters: a small alphabet, no colon.
    static func isValidNode(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.allSatisfy(Self.isNodeCharacter)
    }
}

extension ClusterConfig {
    init(node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping("cluster")
        self.position = node.position
        if let nameNode = map.optional("node") {
            let name = try nameNode.string("node")
            guard Self.isValidNode(name) else {
                throw nameNode.error("cluster node names are 1-64 letters, digits, '-', '_' or '.', found '\(name)'")
            }
            self.node = name
        } else {
            self.node = Self.defaultNode()
        }
        let postgresNode = try map.required("postgres")
        let postgres = try postgresNode.mapping("postgres")
        let envNode = try postgres.required("url_env")
        self.urlEnv = try envNode.string("url_env")
        guard !self.urlEnv.isEmpty, self.urlEnv.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw envNode.error("url_env names an environment variable (letters, digits, '_'), found '\(self.urlEnv)'")
        }
        try postgres.finish()
        self.heartbeat = try map.optional("heartbeat")?.duration("heartbeat") ?? Self.defaultHeartbeat
        guard self.heartbeat >= .milliseconds(100), self.heartbeat <= .seconds(600) else {
            throw (map.optional("heartbeat") ?? node).error("heartbeat must be between 100ms and 10m")
        }
        if let policyNode = map.optional("on_store_error") {
            let text = try policyNode.string("on_store_error")
            guard let policy = StoreErrorPolicy(rawValue: text) else {
                throw policyNode.error("on_store_error must be 'open' or 'closed', found '\(text)'")
            }
            self.onStoreError = policy
        } else {
            self.onStoreError = .open
        }
        self.storeTimeout = try map.optional("store_timeout")?.duration("store_timeout") ?? Self.defaultStoreTimeout
        guard self.storeTimeout <= .seconds(60) else {
            throw (map.optional("store_timeout") ?? node).error("store_timeout must be at most 60s")
        }
        try map.finish()
    }
}
