/// The operator's HTTP endpoint (`admin:`): health, metrics, live connections, reload and drain.
public struct AdminConfig: Sendable, Equatable {
    /// Address of the admin listener; nil disables it.
    public var bind: BindAddress?
    /// Environment variable holding the bearer token the admin API requires; nil requires none (loopback only).
    public var tokenEnv: String?
    /// How long a drain waits for connections to close before exiting anyway.
    public var drainTimeout: Duration
    /// File the process writes its pid to, for `gatehouse reload`.
    public var pidFile: String?
    /// Where `bind` was written.
    public var bindPosition: ConfigPosition?

    static let defaultDrainTimeout = Duration.seconds(10)

    /// No admin listener, default drain.
    public static let disabled = AdminConfig(
        bind: nil, tokenEnv: nil, drainTimeout: defaultDrainTimeout, pidFile: nil, bindPosition: nil)
}

extension AdminConfig {
    init(node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("admin")
        let bindNode = map.optional("bind")
        self.bind = try bindNode?.bindAddress("admin bind")
        self.bindPosition = bindNode?.position
        self.tokenEnv = try map.optional("token_env")?.string("token_env")
        self.drainTimeout = try map.optional("drain_timeout")?.duration("drain_timeout") ?? Self.defaultDrainTimeout
        self.pidFile = try map.optional("pid_file").map { node throws(ConfigError) in paths.resolve(try node.string("pid_file")) }
        if let bind = self.bind, let bindNode, !bind.isLoopback, self.tokenEnv == nil {
            throw bindNode.error("an admin bind that is not loopback needs 'token_env' (the admin API can close connections)")
        }
        try map.finish()
    }
}
