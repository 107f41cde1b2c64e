import NIOCore
import NIOSSL

/// Turns a validated configuration into a ``ProxyState``: loads certificates, builds TLS contexts and backend
/// pools. Reads files, so it runs off the event loops.
struct ProxyStateBuilder {
    /// Address of the in-process echo server, for `builtin: echo` backends.
    var echoAddress: BindAddress?
    /// Self-signed certificates already generated, by listener name (kept across reloads).
    var selfSigned: [String: SelfSignedCertificate]
    /// Route counters from the previous state, by route name.
    var counters: [String: RouteCounters]

    /// Environment variables (HMAC secrets, admin token).
    var environment: [String: String]
    /// Where route metrics live.
    var metrics: ProxyMetrics
    /// SHA-256 of the admin token, when one is configured.
    var adminTokenDigest: [UInt8]? = nil

    func build(_ config: ProxyConfig, generation: Int) async throws(ConfigError) -> ProxyState {
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
            pools[backend.name] = try self.pool(for: backend)
        }
        var providers: [String: any AuthProvider] = [:]
        for provider in config.auth {
            switch provider.kind {
            case .jwt(let jwt):
                providers[provider.name] = try await JWTProvider.load(jwt, name: provider.name, environment: self.environment)
            case .staticTokens(let file, let position):
                providers[provider.name] = try StaticTokenProvider.load(path: file, name: provider.name, position: position)
            }
        }
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
        return ProxyState(
            config: config, routes: routes, listenerTLS: listenerTLS, generation: generation,
            adminTokenDigest: self.adminTokenDigest
        )
    }

    private func pool(for backend: BackendConfig) throws(ConfigError) -> BackendPool {
        let servers: [BindAddress]
        switch backend.kind {
        case .servers(let addresses):
            servers = addresses
        case .builtinEcho:
            guard let echo = self.echoAddress else {
                throw backend.position.error("backend '\(backend.name)': the builtin echo server is not running")
            }
            servers = [echo]
        }
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
            do {
                tls = (try NIOSSLContext(configuration: client), config.serverName)
            } catch {
                throw backend.position.error("backend '\(backend.name)': cannot build the TLS client context: \(error)")
            }
        }
        return BackendPool(
            name: backend.name, servers: servers, connectTimeout: backend.connectTimeout,
            responseTimeout: backend.responseTimeout, tls: tls
        )
    }

    static func isIPLiteral(_ host: String) -> Bool {
        host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." }
    }
}
