/// The operator's HTTP endpoint (`admin:`): health, metrics, live connections, reload and drain.
public struct AdminConfig: Sendable, Equatable {
    /// Address of the admin listener (TCP or a Unix socket); nil disables it.
    public var bind: AdminBind?
    /// Environment variable holding the bearer token the admin API requires; nil requires none (loopback only).
    public var tokenEnv: String?
    /// How long a drain waits for connections to close before exiting anyway.
    public var drainTimeout: Duration
    /// File the process writes its pid to, for `gatehouse reload`.
    public var pidFile: String?
    /// Where `bind` was written.
    public var bindPosition: ConfigPosition?
    /// Permissions of a Unix admin socket file.
    public var socketMode: UInt16 = Self.defaultSocketMode

    static let defaultDrainTimeout = Duration.seconds(10)
    /// Owner read/write only: whoever can open the socket file can drain the proxy.
    static let defaultSocketMode: UInt16 = 0o600

    /// No admin listener, default drain.
    public static let disabled = AdminConfig(
        bind: nil, tokenEnv: nil, drainTimeout: defaultDrainTimeout, pidFile: nil, bindPosition: nil)
}

extension AdminConfig {
    init(node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("admin")
        let bindNode = map.optional("bind")
        self.bind = try bindNode?.adminBind(paths: paths)
        self.bindPosition = bindNode?.position
        self.tokenEnv = try map.optional("token_env")?.string("token_env")
        self.drainTimeout = try map.optional("drain_timeout")?.duration("drain_timeout") ?? Self.defaultDrainTimeout
        self.pidFile = try map.optional("pid_file").map { node throws(ConfigError) in paths.resolve(try node.string("pid_file")) }
        if let bind = self.bind, let bindNode, !bind.isLocal, self.tokenEnv == nil {
            throw bindNode.error("an admin bind that is not loopback needs 'token_env' (the admin API can close connections)")
        }
        if let modeNode = map.optional("socket_mode") {
            guard case .unix = self.bind else {
                throw modeNode.error("socket_mode applies only to a Unix socket bind (bind: \"unix:/path\")")
            }
            let text = try modeNode.string("socket_mode")
            // Quoted octal ("0660"): an unquoted 0600 is a YAML integer whose digits are easy to misread.
            guard (3...4).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }), let mode = UInt16(text, radix: 8) else {
                throw modeNode.error("socket_mode must be octal permissions such as \"0600\" or \"0660\", found '\(text)'")
            }
            guard mode & 0o600 == 0o600 else {
                throw modeNode.error("socket_mode must let the owner read and write the socket (0600 at least), found '\(text)'")
            }
            guard mode & 0o7000 == 0 else {
                throw modeNode.error("socket_mode takes permission bits only (no setuid, setgid or sticky), found '\(text)'")
            }
            guard mode & 0o007 == 0 || self.tokenEnv != nil else {
                throw modeNode.error("socket_mode '\(text)' lets every local user drive the admin API: give a group access instead, or set 'token_env'")
            }
            self.socketMode = mode
        }
        try map.finish()
    }
}
