import Yams

/// The whole of `proxy.yaml`, validated: every name resolves, every value is in range.
public struct ProxyConfig: Sendable, Equatable {
    /// The file it was read from, as named by the operator.
    public var file: String
    /// Event-loop threads; nil uses one per core.
    public var threads: Int?
    /// Sockets accepting clients.
    public var listeners: [ListenerConfig]
    /// Servers behind the proxy.
    public var backends: [BackendConfig]
    /// Routing and per-route policy, most specific match first at lookup.
    public var routes: [RouteConfig]
    /// Limits applied where a route does not override them.
    public var defaultLimits: LimitsConfig
    /// Token providers.
    public var auth: [AuthProviderConfig]
    /// The admin endpoint.
    public var admin: AdminConfig
    /// Logging.
    public var log: LogConfig
    /// Cluster mode; nil for a single instance.
    public var cluster: ClusterConfig?
    /// OpenTelemetry settings over the `OTEL_*` variables; nil: tracing only if the variables ask for it.
    public var tracing: TracingConfig? = nil

    /// The backend a route names (present in a validated configuration).
    public func backend(named name: String) -> BackendConfig? {
        self.backends.first { $0.name == name }
    }
}

extension ProxyConfig {
    /// Parses and validates configuration text; `file` names it in errors and anchors relative paths.
    public static func parse(yaml: String, file: String) throws(ConfigError) -> ProxyConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, Resolver.basic.appending(.merge))
        } catch {
            throw ConfigError.fromYAML(error, file: file)
        }
        guard let root else {
            throw ConfigError(file: file, line: 1, column: 1, message: "the file is empty; it needs listeners, backends and routes")
        }
        let directory = file.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let paths = ConfigPaths(directory: file.hasPrefix("/") && directory.isEmpty ? "/" : directory)
        let config = try ProxyConfig(node: ConfigNode(node: root, file: file), file: file, paths: paths)
        try config.validateReferences()
        return config
    }

    init(node: ConfigNode, file: String, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("the configuration")
        self.file = file
        self.threads = try map.optional("threads")?.int("threads", in: 1...256)

        self.defaultLimits = LimitsConfig()
        if let defaultsNode = map.optional("defaults") {
            let defaults = try defaultsNode.mapping("defaults")
            if let limits = defaults.optional("limits") {
                self.defaultLimits = try LimitsConfig(node: limits, over: LimitsConfig(), isRoute: false)
            }
            try defaults.finish()
        }

        let listenersNode = try map.required("listeners")
        self.listeners = []
        for item in try listenersNode.sequence("listeners") {
            self.listeners.append(try ListenerConfig(node: item, paths: paths))
        }
        guard !self.listeners.isEmpty else { throw listenersNode.error("listeners must list at least one listener") }

        let backendsNode = try map.required("backends")
        self.backends = []
        for item in try backendsNode.sequence("backends") {
            self.backends.append(try BackendConfig(node: item, paths: paths))
        }
        guard !self.backends.isEmpty else { throw backendsNode.error("backends must list at least one backend") }

        let routesNode = try map.required("routes")
        self.routes = []
        for item in try routesNode.sequence("routes") {
            self.routes.append(try RouteConfig(node: item, defaults: self.defaultLimits))
        }
        guard !self.routes.isEmpty else { throw routesNode.error("routes must list at least one route") }

        self.auth = []
        if let authNode = map.optional("auth") {
            for item in try authNode.sequence("auth") {
                self.auth.append(try AuthProviderConfig(node: item, paths: paths))
            }
        }
        self.admin = try map.optional("admin").map { node throws(ConfigError) in try AdminConfig(node: node, paths: paths) }
            ?? .disabled
        self.log = try map.optional("log").map { node throws(ConfigError) in try LogConfig(node: node) } ?? .standard
        self.cluster = try map.optional("cluster").map { node throws(ConfigError) in try ClusterConfig(node: node) }
        self.tracing = try map.optional("tracing").map { node throws(ConfigError) in try TracingConfig(node: node) }
        try map.finish()
    }

    /// Cross-entry checks: unique names and binds, and every name a route uses exists.
    func validateReferences() throws(ConfigError) {
        try Self.requireUnique(self.listeners.map { ($0.name, $0.position) }, what: "listener")
        try Self.requireUnique(self.backends.map { ($0.name, $0.position) }, what: "backend")
        try Self.requireUnique(self.routes.map { ($0.name, $0.position) }, what: "route")
        try Self.requireUnique(self.auth.map { ($0.name, $0.position) }, what: "auth provider")

        var binds: [(BindAddress, String, ConfigPosition)] = self.listeners.map { ($0.bind, "listener '\($0.name)'", $0.position) }
        if let bind = self.admin.bind?.tcpAddress, let position = self.admin.bindPosition {
            binds.append((bind, "the admin listener", position))
        }
        for (index, entry) in binds.enumerated() where entry.0.port != 0 {
            for earlier in binds[..<index] where earlier.0.port == entry.0.port && Self.hostsOverlap(earlier.0.host, entry.0.host) {
                throw entry.2.error("\(entry.1) binds \(entry.0), already bound by \(earlier.1) at \(earlier.2)")
            }
        }

        var seenMatches: [String: RouteConfig] = [:]
        for route in self.routes {
            guard self.backend(named: route.backend) != nil else {
                let known = self.backends.map(\.name).joined(separator: ", ")
                throw route.backendPosition.error("route '\(route.name)' names backend '\(route.backend)', which does not exist (backends: \(known))")
            }
            let key = "\(route.host?.description ?? "*") \(route.path)"
            if let earlier = seenMatches[key] {
                throw route.position.error("route '\(route.name)' matches the same host and path as route '\(earlier.name)' at \(earlier.position)")
            }
            seenMatches[key] = route
            if route.limits.scope == .cluster && self.cluster == nil {
                throw route.position.error("route '\(route.name)' counts its limits across the cluster (scope: cluster), but there is no cluster: section")
            }
            if let auth = route.auth {
                for provider in auth.providers where !self.auth.contains(where: { $0.name == provider }) {
                    throw auth.providersPosition.error("route '\(route.name)' names auth provider '\(provider)', which does not exist")
                }
            }
        }
    }

    private static func requireUnique(_ names: [(String, ConfigPosition)], what: String) throws(ConfigError) {
        var seen: [String: ConfigPosition] = [:]
        for (name, position) in names {
            if let earlier = seen[name] {
                throw position.error("duplicate \(what) name '\(name)' (first declared at \(earlier))")
            }
            seen[name] = position
        }
    }

    private static func hostsOverlap(_ a: String, _ b: String) -> Bool {
        let wildcards: Set<String> = ["0.0.0.0", "::", "*"]
        return a == b || wildcards.contains(a) || wildcards.contains(b)
    }
}
