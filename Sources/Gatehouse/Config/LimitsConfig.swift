/// Per-connection and per-route limits (`defaults.limits`, overridden key by key in a route's `limits`).
///
/// Optional limits are nil when unlimited; durations of zero mean "disabled".
public struct LimitsConfig: Sendable, Equatable {
    /// Outbound bytes buffered toward one peer before the proxy stops reading the other peer.
    public var bufferBytes: Int = 64 << 10
    /// Largest request head accepted (431 above). Applies before routing, so only in `defaults.limits`.
    public var maxHeadBytes: Int = 16 << 10
    /// Time a client has to send its complete request head. Only in `defaults.limits`.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Largest single WebSocket frame payload (close 1009 above).
    public var maxFrameBytes: Int? = nil
    /// Largest WebSocket message, summed over its fragments (close 1009 above).
    public var maxMessageBytes: Int? = nil
    /// Ping the client after this much silence; zero disables.
    public var keepaliveInterval: Duration = .seconds(30)
    /// Close both sides after this long without a data frame either way; zero disables.
    public var idleTimeout: Duration = .zero
    /// Time allowed for the answering close frame before TCP is closed.
    public var closeTimeout: Duration = .seconds(5)
    /// Data messages per second per direction (token bucket, burst of one second); close 1008 above.
    public var messagesPerSecond: Int? = nil
    /// Simultaneous connections on the route (503 above).
    public var maxConnections: Int? = nil
    /// Simultaneous connections on the route from one client IP (429 above).
    public var maxConnectionsPerIP: Int? = nil
    /// Handshakes per second on the route from one client IP (429 above).
    public var handshakesPerIPPerSecond: Int? = nil
    /// Simultaneous connections on the route of one token subject (429 above). Authenticated routes only: a route
    /// without `auth` may not set it, and one set in `defaults.limits` is not applied to such routes.
    public var maxConnectionsPerSubject: Int? = nil
    /// Where `max_connections`, `max_connections_per_ip` and `max_connections_per_subject` are counted: on this
    /// node, or across the cluster's live nodes (`scope: cluster`, needs a `cluster:` section).
    public var scope: LimitScope = .local
    /// Accepted connections not yet carrying a WebSocket (TLS, request head, backend handshake; an HTTP/2
    /// connection until its first stream is relayed), over all clients: more are closed at accept. Only in
    /// `defaults.limits`.
    public var maxPendingConnections: Int = 10_000
    /// The same, from one client IP. Only in `defaults.limits`.
    public var maxPendingConnectionsPerIP: Int = 256
    /// HTTP/2 streams of one connection in their handshake at once (routing, policy, backend connect and
    /// upgrade); more are refused with RST_STREAM REFUSED_STREAM. Only in `defaults.limits`.
    public var maxHandshakesPerConnection: Int = 16

    /// The built-in defaults.
    public init() {}

    /// Keys that only make sense before a route is known.
    static let connectionLevelKeys: Set<String> = [
        "max_head_bytes", "handshake_timeout", "max_pending_connections", "max_pending_connections_per_ip",
        "max_handshakes_per_connection",
    ]
}

/// Where a route's connection limits are counted (`scope`).
public enum LimitScope: String, Sendable, CaseIterable {
    /// On each node by itself.
    case local
    /// Across every live node of the cluster, with leases in the shared store.
    case cluster
}

extension LimitsConfig {
    /// Reads a `limits` mapping over `base`; keys absent keep the base value.
    init(node: ConfigNode, over base: LimitsConfig, isRoute: Bool) throws(ConfigError) {
        let map = try node.mapping("limits")
        self = base
        if isRoute {
            for key in Self.connectionLevelKeys {
                if let position = map.keyPosition(key) {
                    throw position.error("\(key) applies before a route is chosen; set it in defaults.limits")
                }
            }
        }
        if let value = map.optional("buffer_bytes") {
            self.bufferBytes = try value.byteSize("buffer_bytes", in: 4096...(64 << 20))
        }
        if let value = map.optional("max_head_bytes") {
            self.maxHeadBytes = try value.byteSize("max_head_bytes", in: 1024...(1 << 20))
        }
        if let value = map.optional("handshake_timeout") {
            self.handshakeTimeout = try value.duration("handshake_timeout")
        }
        if let value = map.optional("max_pending_connections") {
            self.maxPendingConnections = try value.int("max_pending_connections", in: 1...10_000_000)
        }
        if let value = map.optional("max_pending_connections_per_ip") {
            self.maxPendingConnectionsPerIP = try value.int("max_pending_connections_per_ip", in: 1...10_000_000)
        }
        if let value = map.optional("max_handshakes_per_connection") {
            self.maxHandshakesPerConnection = try value.int("max_handshakes_per_connection", in: 1...10_000)
        }
        if let value = map.optional("max_frame_bytes") {
            self.maxFrameBytes = try value.optionalLimit { node throws(ConfigError) in
                try node.byteSize("max_frame_bytes", in: 125...(1 << 40))
            }
        }
        if let value = map.optional("max_message_bytes") {
            self.maxMessageBytes = try value.optionalLimit { node throws(ConfigError) in
                try node.byteSize("max_message_bytes", in: 125...(1 << 40))
            }
        }
        if let value = map.optional("keepalive_interval") {
            self.keepaliveInterval = try value.duration("keepalive_interval", allowZero: true)
        }
        if let value = map.optional("idle_timeout") {
            self.idleTimeout = try value.duration("idle_timeout", allowZero: true)
        }
        if let value = map.optional("close_timeout") {
            self.closeTimeout = try value.duration("close_timeout")
        }
        if let value = map.optional("messages_per_second") {
            self.messagesPerSecond = try value.optionalLimit { node throws(ConfigError) in
                try node.int("messages_per_second", in: 1...10_000_000)
            }
        }
        if let value = map.optional("max_connections") {
            self.maxConnections = try value.optionalLimit { node throws(ConfigError) in
                try node.int("max_connections", in: 1...10_000_000)
            }
        }
        if let value = map.optional("max_connections_per_ip") {
            self.maxConnectionsPerIP = try value.optionalLimit { node throws(ConfigError) in
                try node.int("max_connections_per_ip", in: 1...10_000_000)
            }
        }
        if let value = map.optional("handshakes_per_ip_per_second") {
            self.handshakesPerIPPerSecond = try value.optionalLimit { node throws(ConfigError) in
                try node.int("handshakes_per_ip_per_second", in: 1...10_000_000)
            }
        }
        if let value = map.optional("max_connections_per_subject") {
            self.maxConnectionsPerSubject = try value.optionalLimit { node throws(ConfigError) in
                try node.int("max_connections_per_subject", in: 1...10_000_000)
            }
        }
        if let value = map.optional("scope") {
            let text = try value.string("scope")
            guard let scope = LimitScope(rawValue: text) else {
                throw value.error("scope must be local or cluster, found '\(text)'")
            }
            self.scope = scope
        }
        if let frame = self.maxFrameBytes, let message = self.maxMessageBytes, frame > message {
            throw node.error("max_frame_bytes (\(frame)) cannot exceed max_message_bytes (\(message))")
        }
        try map.finish()
    }
}

extension ConfigNode {
    /// `unlimited` or a value read by `read`.
    func optionalLimit(_ read: (ConfigNode) throws(ConfigError) -> Int) throws(ConfigError) -> Int? {
        if case .scalar(let scalar) = self.node, scalar.string == "unlimited" { return nil }
        return try read(self)
    }
}
