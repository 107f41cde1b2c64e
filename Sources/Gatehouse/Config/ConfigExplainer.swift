/// The effective configuration written back as `proxy.yaml` text with every default filled in
/// (`gatehouse check --explain`).
///
/// Each configuration type is mapped to the README's key names explicitly, so that the output reads back through
/// ``ProxyConfig/parse(yaml:file:)`` to the same configuration. Only configuration is written: variable names such
/// as `secret_env` are, but nothing read from the environment or from files ever is.
public enum ConfigExplainer {
    /// The YAML text of `config`; parsing it gives back `config` (positions and the file name aside).
    public static func yaml(for config: ProxyConfig) -> String {
        var out = Writer()
        out.line(0, "# Effective configuration of \(config.file), every default filled in.")
        if let threads = config.threads {
            out.line(0, "threads: \(threads)")
        } else {
            out.line(0, "# threads: one per core (the default)")
        }
        out.line(0, "listeners:")
        for listener in config.listeners { Self.listener(listener, &out) }
        out.line(0, "backends:")
        for backend in config.backends { Self.backend(backend, &out) }
        out.line(0, "routes:")
        for route in config.routes { Self.route(route, &out) }
        if config.auth.isEmpty {
            out.line(0, "# auth: none")
        } else {
            out.line(0, "auth:")
            for provider in config.auth { Self.provider(provider, &out) }
        }
        out.line(0, "defaults:")
        out.line(1, "limits:")
        Self.limits(config.defaultLimits, level: 2, isRoute: false, hasAuth: true, &out)
        Self.admin(config.admin, &out)
        out.line(0, "log:")
        out.line(1, "level: \(config.log.level.rawValue)")
        out.line(1, "format: \(config.log.format.rawValue)")
        out.line(1, "access_log: \(config.log.accessLog)")
        out.line(1, "queue_bytes: \(Self.size(config.log.queueBytes))")
        if let cluster = config.cluster {
            out.line(0, "cluster:")
            out.line(1, "node: \(Self.quote(cluster.node))")
            out.line(1, "postgres:")
            out.line(2, "url_env: \(Self.quote(cluster.urlEnv))")
            out.line(1, "heartbeat: \(Self.duration(cluster.heartbeat))")
            out.line(1, "on_store_error: \(cluster.onStoreError.rawValue)")
            out.line(1, "store_timeout: \(Self.duration(cluster.storeTimeout))")
        }
        if let tracing = config.tracing {
            Self.tracing(tracing, &out)
        }
        return out.text
    }

    // MARK: Sections

    private static func listener(_ listener: ListenerConfig, _ out: inout Writer) {
        out.item(1, "name: \(Self.quote(listener.name))")
        out.line(2, "bind: \(Self.quote(listener.bind.description))")
        out.line(2, "max_concurrent_streams: \(listener.maxConcurrentStreams)")
        guard let tls = listener.tls else { return }
        out.line(2, "tls:")
        if tls.certificates.isEmpty {
            out.line(3, "certificates: []")
        } else {
            out.line(3, "certificates:")
            for pair in tls.certificates {
                out.line(4, "- { cert: \(Self.quote(pair.cert)), key: \(Self.quote(pair.key)) }")
            }
        }
        out.line(3, "self_signed: \(tls.selfSigned)")
        out.line(3, "min_version: \(Self.quote(tls.minVersion.rawValue))")
        out.line(3, "alpn: \(Self.list(tls.alpn))")
        // TLS 1.3 suites are fixed: `ciphers` with min_version 1.3 is an error, so it is written for 1.2 only.
        if tls.minVersion == .v1_2 {
            out.line(3, "ciphers: \(Self.list(tls.ciphers.names))")
        }
        if let clientAuth = tls.clientAuth {
            out.line(3, "client_auth:")
            out.line(4, "ca: \(Self.quote(clientAuth.ca))")
            out.line(4, "mode: \(clientAuth.mode.rawValue)")
        }
    }

    private static func backend(_ backend: BackendConfig, _ out: inout Writer) {
        out.item(1, "name: \(Self.quote(backend.name))")
        switch backend.kind {
        case .builtinEcho:
            out.line(2, "builtin: echo")
            out.line(2, "max_frame_bytes: \(Self.size(backend.echoMaxFrameBytes))")
        case .servers(let servers):
            out.line(2, "servers:")
            for server in servers {
                out.line(3, "- { address: \(Self.quote(server.address.description)), weight: \(server.weight) }")
            }
        }
        out.line(2, "connect_timeout: \(Self.duration(backend.connectTimeout))")
        out.line(2, "response_timeout: \(Self.duration(backend.responseTimeout))")
        // Balancing, health and TLS keys are errors on the built-in echo backend.
        guard case .servers = backend.kind else { return }
        if let tls = backend.tls {
            var entries: [String] = []
            if let ca = tls.caFile { entries.append("ca: \(Self.quote(ca))") }
            if let name = tls.serverName { entries.append("server_name: \(Self.quote(name))") }
            out.line(2, "tls: {\(entries.isEmpty ? "" : " " + entries.joined(separator: ", ") + " ")}")
        }
        out.line(2, "balance: \(backend.balance.rawValue)")
        if backend.balance == .hash, let key = backend.hashKey {
            out.line(2, "hash: { key: \(Self.quote(key.description)) }")
        }
        out.line(2, "slow_start: \(Self.duration(backend.slowStart))")
        out.line(2, "drain_rate: \(backend.drainRate)")
        out.line(2, "resolve_interval: \(Self.duration(backend.resolveInterval))")
        if let health = backend.health {
            out.line(2, "health:")
            out.line(3, "interval: \(Self.duration(health.interval))")
            out.line(3, "timeout: \(Self.duration(health.timeout))")
            out.line(3, "rise: \(health.rise)")
            out.line(3, "fall: \(health.fall)")
            out.line(3, "path: \(Self.quote(health.path))")
        } else {
            out.line(2, "# health: none (no check traffic)")
        }
        if let passive = backend.passive {
            out.line(2, "passive:")
            out.line(3, "failures: \(passive.failures)")
            out.line(3, "window: \(Self.duration(passive.window))")
            out.line(3, "eject: \(Self.duration(passive.eject))")
        } else {
            out.line(2, "passive: off")
        }
    }

    private static func route(_ route: RouteConfig, _ out: inout Writer) {
        out.item(1, "name: \(Self.quote(route.name))")
        if let host = route.host {
            out.line(2, "host: \(Self.quote(host.description))")
        } else {
            out.line(2, "# host: any")
        }
        out.line(2, "path: \(Self.quote(route.path.description))")
        out.line(2, "backend: \(Self.quote(route.backend))")
        out.line(2, "origins: \(Self.list(route.origins.map(\.description)))")
        if let auth = route.auth {
            out.line(2, "auth:")
            out.line(3, "providers: \(Self.list(auth.providers))")
            out.line(3, "token_sources: \(Self.list(auth.tokenSources.map(\.description)))")
            out.line(3, "scopes: \(Self.list(auth.scopes))")
        }
        out.line(2, "forward_token: \(route.forwardToken)")
        out.line(2, "enforce_expiry: \(route.enforceExpiry)")
        out.line(2, "allow_underscore_headers: \(route.allowUnderscoreHeaders)")
        out.line(2, "compression: \(route.compression.rawValue)")
        out.line(2, "limits:")
        Self.limits(route.limits, level: 3, isRoute: true, hasAuth: route.auth != nil, &out)
    }

    private static func provider(_ provider: AuthProviderConfig, _ out: inout Writer) {
        out.item(1, "name: \(Self.quote(provider.name))")
        switch provider.kind {
        case .jwt(let jwt):
            out.line(2, "type: jwt")
            out.line(2, "algorithms: \(Self.list(jwt.algorithms))")
            if let env = jwt.secretEnv { out.line(2, "secret_env: \(Self.quote(env))") }
            if let file = jwt.jwksFile { out.line(2, "jwks_file: \(Self.quote(file))") }
            if let remote = jwt.remote {
                switch remote.source {
                case .jwksURL(let url): out.line(2, "jwks_url: \(Self.quote(url))")
                case .oidcIssuer(let issuer): out.line(2, "oidc_issuer: \(Self.quote(issuer))")
                }
                if let ca = remote.caFile { out.line(2, "ca: \(Self.quote(ca))") }
                out.line(2, "jwks_refresh_min: \(Self.duration(remote.refreshMin))")
                out.line(2, "jwks_refresh_max: \(Self.duration(remote.refreshMax))")
                out.line(2, "jwks_refetch_min: \(Self.duration(remote.refetchMin))")
                out.line(2, "jwks_timeout: \(Self.duration(remote.timeout))")
                out.line(2, "jwks_max_bytes: \(Self.size(remote.maxBytes))")
            }
            if let issuer = jwt.issuer { out.line(2, "issuer: \(Self.quote(issuer))") }
            if let audience = jwt.audience { out.line(2, "audience: \(Self.quote(audience))") }
            out.line(2, "leeway: \(Self.duration(jwt.leeway))")
            out.line(2, "require_exp: \(jwt.requireExpiry)")
        case .staticTokens(let tokensFile, _):
            out.line(2, "type: static")
            out.line(2, "tokens_file: \(Self.quote(tokensFile))")
        case .introspection(let introspection):
            out.line(2, "type: introspection")
            out.line(2, "endpoint: \(Self.quote(introspection.endpoint))")
            out.line(2, "client_id_env: \(Self.quote(introspection.clientIDEnv))")
            out.line(2, "client_secret_env: \(Self.quote(introspection.clientSecretEnv))")
            if let ca = introspection.ca { out.line(2, "ca: \(Self.quote(ca))") }
            out.line(2, "cache_ttl: \(Self.duration(introspection.cacheTTL))")
            out.line(2, "negative_cache_ttl: \(Self.duration(introspection.negativeCacheTTL))")
            out.line(2, "cache_size: \(introspection.cacheSize)")
            out.line(2, "max_concurrent: \(introspection.maxConcurrent)")
            out.line(2, "timeout: \(Self.duration(introspection.timeout))")
            out.line(2, "max_response_bytes: \(Self.size(introspection.maxResponseBytes))")
            out.line(2, "on_error: \(introspection.onError.rawValue)")
            if let issuer = introspection.issuer { out.line(2, "issuer: \(Self.quote(issuer))") }
            if let audience = introspection.audience { out.line(2, "audience: \(Self.quote(audience))") }
        case .mtls(let mtls):
            out.line(2, "type: mtls")
            out.line(2, "subject_from: \(Self.list(mtls.subjectFrom.map(\.rawValue)))")
            out.line(2, "forward_certificate: \(mtls.forwardCertificate)")
        }
    }

    /// Every limit; a route's omits the keys that only `defaults.limits` takes, and `max_connections_per_subject`
    /// when it has no `auth` (an error there; such a route never applies it).
    private static func limits(_ limits: LimitsConfig, level: Int, isRoute: Bool, hasAuth: Bool, _ out: inout Writer) {
        out.line(level, "buffer_bytes: \(Self.size(limits.bufferBytes))")
        if !isRoute {
            out.line(level, "max_head_bytes: \(Self.size(limits.maxHeadBytes))")
            out.line(level, "handshake_timeout: \(Self.duration(limits.handshakeTimeout))")
            out.line(level, "max_pending_connections: \(limits.maxPendingConnections)")
            out.line(level, "max_pending_connections_per_ip: \(limits.maxPendingConnectionsPerIP)")
            out.line(level, "max_handshakes_per_connection: \(limits.maxHandshakesPerConnection)")
        }
        out.line(level, "max_frame_bytes: \(limits.maxFrameBytes.map(Self.size) ?? "unlimited")")
        out.line(level, "max_message_bytes: \(limits.maxMessageBytes.map(Self.size) ?? "unlimited")")
        out.line(level, "messages_per_second: \(Self.count(limits.messagesPerSecond))")
        out.line(level, "keepalive_interval: \(Self.duration(limits.keepaliveInterval))")
        out.line(level, "idle_timeout: \(Self.duration(limits.idleTimeout))")
        out.line(level, "close_timeout: \(Self.duration(limits.closeTimeout))")
        out.line(level, "max_connections: \(Self.count(limits.maxConnections))")
        out.line(level, "max_connections_per_ip: \(Self.count(limits.maxConnectionsPerIP))")
        if hasAuth {
            out.line(level, "max_connections_per_subject: \(Self.count(limits.maxConnectionsPerSubject))")
        }
        out.line(level, "scope: \(limits.scope.rawValue)")
        out.line(level, "handshakes_per_ip_per_second: \(Self.count(limits.handshakesPerIPPerSecond))")
    }

    private static func admin(_ admin: AdminConfig, _ out: inout Writer) {
        out.line(0, "admin:")
        if let bind = admin.bind {
            out.line(1, "bind: \(Self.quote(bind.description))")
            if case .unix = bind {
                out.line(1, "socket_mode: \(Self.quote(Self.octal(admin.socketMode)))")
            }
        } else {
            out.line(1, "# bind: none (no admin endpoint)")
        }
        if let env = admin.tokenEnv { out.line(1, "token_env: \(Self.quote(env))") }
        out.line(1, "drain_timeout: \(Self.duration(admin.drainTimeout))")
        if let file = admin.pidFile { out.line(1, "pid_file: \(Self.quote(file))") }
    }

    /// Only the keys set: the others leave their `OTEL_*` variables in effect, which is not configuration.
    private static func tracing(_ tracing: TracingConfig, _ out: inout Writer) {
        var lines: [String] = []
        if let endpoint = tracing.endpoint { lines.append("endpoint: \(Self.quote(endpoint))") }
        if let value = tracing.exportProtocol { lines.append("protocol: \(Self.quote(value.rawValue))") }
        if let name = tracing.serviceName { lines.append("service_name: \(Self.quote(name))") }
        if let ratio = tracing.sampleRatio { lines.append("sample_ratio: \(ratio)") }
        if lines.isEmpty {
            out.line(0, "tracing: {}")
        } else {
            out.line(0, "tracing:")
            for line in lines { out.line(1, line) }
        }
    }

    // MARK: Values

    /// `1h`, `5m`, `30s`, `500ms` (the largest unit that divides it exactly), or `0`.
    static func duration(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0" }
        if milliseconds % 1000 != 0 { return "\(milliseconds)ms" }
        let whole = milliseconds / 1000
        if whole % 3600 == 0 { return "\(whole / 3600)h" }
        if whole % 60 == 0 { return "\(whole / 60)m" }
        return "\(whole)s"
    }

    /// `64KiB`, `1MiB`, or plain bytes.
    static func size(_ bytes: Int) -> String {
        ByteSizeFormatter.format(bytes)
    }

    private static func count(_ value: Int?) -> String {
        value.map(String.init) ?? "unlimited"
    }

    /// Four octal digits, as `socket_mode` is written (`0600`).
    static func octal(_ mode: UInt16) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private static func list(_ items: [String]) -> String {
        "[" + items.map(Self.quote).joined(separator: ", ") + "]"
    }

    /// A YAML double-quoted scalar: backslash and quote escaped, and every character that YAML would read as a
    /// line break or that is not printable written as `\uXXXX`, so no value can end the line or change its type.
    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
                || scalar.value == 0x2028 || scalar.value == 0x2029 || scalar.value == 0xFEFF:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                result += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// Lines at two spaces per level; `item` starts a sequence entry whose next lines are one level deeper.
    private struct Writer {
        var text = ""

        mutating func line(_ level: Int, _ content: String) {
            self.text += String(repeating: "  ", count: level) + content + "\n"
        }

        mutating func item(_ level: Int, _ content: String) {
            self.text += String(repeating: "  ", count: level) + "- " + content + "\n"
        }
    }
}
