import Crypto
import Foundation
import Logging
import NIOCore
import NIOSSL

/// Turns a checked configuration into the ``ServingState`` it is served with: the builtin echo backend,
/// self-signed certificates, listener TLS contexts, backend pools, token providers, the admin token. Start-up,
/// reload and `gatehouse check` all go through it. Reads files and the environment, so it runs off the event
/// loops; it changes nothing live (a server it starts is the caller's to keep or stop).
struct ServingStateBuilder {
    /// Where `builtin: echo` backends connect.
    enum Echo {
        /// To the in-process echo server, started on this group the first time a configuration needs it.
        case start(on: EventLoopGroup)
        /// To a placeholder address, without starting anything: the configuration is only checked.
        case placeholder
    }

    /// The in-process echo server, once started; carried over from one build to the next.
    var echoServer: EchoServer?
    /// Self-signed certificates by listener name, generated once and carried over.
    var selfSigned: [String: SelfSignedCertificate]
    /// Live-connection counters of the routes already served, by route name: a rebuilt route keeps counting.
    var counters: [String: RouteCounters]
    /// Server state of the backends already served, by backend name: live counts, health and drains carry over.
    var runtimes: [String: BackendRuntime]
    /// Where route metrics live.
    let metrics: ProxyMetrics
    /// The HTTP client and caches remote providers share; nil where nothing may be fetched (`gatehouse check`).
    var identity: IdentityRuntime?
    let logger: Logger
    /// Environment variables (HMAC secrets, admin token).
    let environment: [String: String]

    init(
        echoServer: EchoServer? = nil, selfSigned: [String: SelfSignedCertificate] = [:], counters: [String: RouteCounters] = [:],
        runtimes: [String: BackendRuntime] = [:], metrics: ProxyMetrics, identity: IdentityRuntime? = nil, logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.identity = identity
        self.echoServer = echoServer
        self.selfSigned = selfSigned
        self.counters = counters
        self.runtimes = runtimes
        self.metrics = metrics
        self.logger = logger
        self.environment = environment
    }

    mutating func build(_ config: ProxyConfig, generation: Int, echo: Echo) async throws(ConfigError) -> ServingState {
        let echoAddress: BindAddress?
        switch echo {
        case .start(let group):
            try await self.startEchoIfNeeded(for: config, group: group)
            echoAddress = self.echoServer?.localAddress.flatMap { $0.port }.map { BindAddress(host: "127.0.0.1", port: $0) }
        case .placeholder:
            echoAddress = BindAddress(host: "127.0.0.1", port: 1)
        }
        for listener in config.listeners where listener.tls?.selfSigned == true && self.selfSigned[listener.name] == nil {
            let certificate: SelfSignedCertificate
            do {
                certificate = try SelfSignedCertificate.generate()
            } catch {
                throw listener.position.error("cannot generate a self-signed certificate: \(error)")
            }
            self.selfSigned[listener.name] = certificate
            self.logger.notice(
                "generated a self-signed development certificate",
                metadata: ["listener": "\(listener.name)", "sha256": "\(certificate.fingerprint)"]
            )
        }
        let adminTokenDigest = try self.adminTokenDigest(config)
        var listenerTLS: [String: ListenerTLSContext] = [:]
        for listener in config.listeners {
            guard let tls = listener.tls else { continue }
            listenerTLS[listener.name] = try ListenerTLSContext.make(
                config: tls, listener: listener.name, selfSigned: self.selfSigned[listener.name], file: config.file,
                position: listener.position
            )
        }
        var pools: [String: BackendPool] = [:]
        for backend in config.backends {
            let runtime = self.runtimes[backend.name] ?? BackendRuntime(name: backend.name)
            self.runtimes[backend.name] = runtime
            pools[backend.name] = try Self.pool(for: backend, echoAddress: echoAddress, runtime: runtime)
        }
        var providers: [String: any AuthProvider] = [:]
        for provider in config.auth {
            switch provider.kind {
            case .jwt(let jwt):
                providers[provider.name] = try await JWTProvider.load(
                    jwt, name: provider.name, environment: self.environment, identity: self.identity
                )
            case .staticTokens(let file, let position):
                providers[provider.name] = try StaticTokenProvider.load(path: file, name: provider.name, position: position)
            case .introspection(let introspection):
                providers[provider.name] = try IntrospectionProvider.make(
                    introspection, name: provider.name, environment: self.environment, identity: self.identity, metrics: self.metrics
                )
            case .mtls(let mtls):
                providers[provider.name] = try MTLSProvider.make(mtls, name: provider.name)
            }
        }
        // For `GET /auth` once this configuration is served (the caller commits or discards it).
        self.identity?.stage(providers: config.auth.compactMap { providers[$0.name] })
        var routes: [ActiveRoute] = []
        for route in config.routes {
            guard let pool = pools[route.backend] else {
                throw route.backendPosition.error("route '\(route.name)' names backend '\(route.backend)', which does not exist")
            }
            let auth = route.auth.map { auth in
                RouteAuth(providers: auth.providers.compactMap { providers[$0] }, sources: auth.tokenSources, scopes: auth.scopes)
            }
            routes.append(
                ActiveRoute(
                    config: route, backend: pool, counters: self.counters[route.name] ?? RouteCounters(), auth: auth,
                    metrics: self.metrics.route(route.name)
                )
            )
        }
        return ServingState(
            config: config, routes: routes, listenerTLS: listenerTLS, generation: generation, adminTokenDigest: adminTokenDigest,
            pools: pools
        )
    }

    private mutating func startEchoIfNeeded(for config: ProxyConfig, group: EventLoopGroup) async throws(ConfigError) {
        guard self.echoServer == nil, let backend = config.backends.first(where: { $0.kind == .builtinEcho }) else { return }
        let server: EchoServer
        do {
            server = try await EchoServer.start(host: "127.0.0.1", port: 0, group: group, maxFrameSize: EchoServer.maxFrameSize(for: config))
        } catch {
            throw backend.position.error("backend '\(backend.name)': the builtin echo server cannot start: \(error)")
        }
        self.echoServer = server
        self.logger.info("builtin echo backend started", metadata: ["address": "\(server.localAddress.map(ConnectionRecord.describe) ?? "?")"])
    }

    /// SHA-256 of the admin token the configuration names, read from the environment; nil when it names none.
    private func adminTokenDigest(_ config: ProxyConfig) throws(ConfigError) -> [UInt8]? {
        guard let variable = config.admin.tokenEnv else { return nil }
        guard let token = self.environment[variable], !token.isEmpty else {
            throw (config.admin.bindPosition ?? ConfigPosition(file: config.file, line: 1, column: 1))
                .error("environment variable \(variable) (admin token_env) is not set")
        }
        return Array(SHA256.hash(data: Array(token.utf8)))
    }

    private static func pool(for backend: BackendConfig, echoAddress: BindAddress?, runtime: BackendRuntime) throws(ConfigError) -> BackendPool {
        let entries: [BackendServerConfig]
        switch backend.kind {
        case .servers(let configured):
            entries = configured
        case .builtinEcho:
            guard let echo = echoAddress else {
                throw backend.position.error("backend '\(backend.name)': the builtin echo server is not running")
            }
            entries = [BackendServerConfig(address: echo, weight: 1)]
        }
        let servers = entries.map(\.address)
        var tls: (NIOSSLContext, String?)?
        if let config = backend.tls {
            if config.serverName == nil, servers.contains(where: { Self.isIPLiteral($0.host) }) {
                throw backend.position.error(
                    "backend '\(backend.name)': TLS to an IP address needs 'server_name' (the name its certificate must carry)"
                )
            }
            var client = TLSConfiguration.makeClientConfiguration()
            client.minimumTLSVersion = .tlsv12
            // NIOSSL's default still offers RSA key exchange and CBC suites: offer what listeners accept.
            client.cipherSuites = CipherSuites.intermediate.cipherString
            client.certificateVerification = .fullVerification
            client.applicationProtocols = ["http/1.1"]
            if let ca = config.caFile {
                do {
                    client.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
                } catch {
                    throw backend.position.error("backend '\(backend.name)': cannot load CA file \(ca): \(error)")
                }
            }
            // Named servers are connected to by their resolved addresses: the name is what the certificate carries.
            let names = Set(servers.filter { !BackendServerSet.isIPLiteral($0.host) }.map(\.host))
            if config.serverName == nil, names.count > 1 {
                throw backend.position.error(
                    "backend '\(backend.name)': TLS to servers of several host names needs 'server_name' (the name their certificates carry)"
                )
            }
            do {
                tls = (try NIOSSLContext(configuration: client), config.serverName ?? names.first)
            } catch {
                throw backend.position.error("backend '\(backend.name)': cannot build the TLS client context: \(error)")
            }
        }
        return BackendPool(config: backend, servers: entries, tls: tls, runtime: runtime)
    }

    static func isIPLiteral(_ host: String) -> Bool {
        host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." }
    }
}
