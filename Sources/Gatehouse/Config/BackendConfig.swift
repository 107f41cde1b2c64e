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
    /// Where the backend was declared.
    public var position: ConfigPosition

    /// The servers of a backend.
    public enum Kind: Sendable, Equatable {
        /// Servers tried round robin; on a connect failure the next one is tried.
        case servers([BindAddress])
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
            var addresses: [BindAddress] = []
            for server in try servers.sequence("servers") {
                let address = try server.bindAddress("a backend server")
                guard address.port != 0 else { throw server.error("a backend server needs a port other than 0") }
                addresses.append(address)
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
        try map.finish()
    }
}
