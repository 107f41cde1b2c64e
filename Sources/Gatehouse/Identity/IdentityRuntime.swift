import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// What identity providers share for the life of the process, across reloads: one HTTP client for JWKS, OIDC
/// discovery and introspection (redirects refused, short connect timeout), the remote key sets by provider, and
/// the providers of the configuration being served (for `GET /auth`).
///
/// A build (start-up or reload) asks for key sets with ``keySet(provider:remote:position:)`` and names its
/// providers with ``stage(providers:)``; nothing runs until ``commit()`` (the new configuration is served), and
/// ``discardPending()`` forgets it all when the build or the reload fails. A key set whose settings did not change
/// is handed to the next configuration as it is: its keys, schedule and rate limits carry over.
final class IdentityRuntime: Sendable {
    let httpClient: HTTPClient
    let metrics: IdentityMetrics
    private let logger: Logger
    private let registry = Mutex(Registry())

    private struct Registry {
        /// Key sets of the configuration served, by provider name.
        var keySets: [String: RemoteJWKS] = [:]
        /// Key sets of the configuration being built (reused ones included).
        var pending: [String: RemoteJWKS] = [:]
        /// Providers of the configuration served, in configuration order.
        var providers: [any AuthProvider] = []
        var staged: [any AuthProvider]?
        /// Publishes key ages (they change without events).
        var ageTicker: Task<Void, Never>?
        var shutDown = false
    }

    /// How often `gatehouse_auth_jwks_age_seconds` is brought up to date.
    static let agePublishInterval = Duration.seconds(5)

    init(eventLoopGroup: EventLoopGroup, metrics: ProxyMetrics = ProxyMetrics(), logger: Logger = Logger(label: "gatehouse.identity")) {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(2), read: .seconds(10))
        configuration.tracing.tracer = nil
        configuration.tlsConfiguration = Self.tlsConfiguration(trustRoots: .default)
        self.httpClient = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
        self.metrics = IdentityMetrics(factory: metrics.factory)
        self.logger = logger
    }

    /// TLS toward identity providers: full verification against `trustRoots`. A connection given up on (a fetch
    /// past its deadline) waits at most a moment for the provider's close_notify, not NIOSSL's default 5 s, which
    /// would hold `stop()` that long behind a provider still trickling its answer.
    static func tlsConfiguration(trustRoots: NIOSSLTrustRoots) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = trustRoots
        configuration.shutdownTimeout = .milliseconds(250)
        return configuration
    }

    // MARK: Building

    /// The key set of provider `name`: the one served when its settings are unchanged, otherwise a new one (with
    /// `oidc_issuer`, its discovery document is checked now: another issuer is a configuration error). Reads the
    /// CA file: call off the event loops.
    func keySet(provider name: String, remote: JWTProviderConfig.Remote, position: ConfigPosition) async throws(ConfigError) -> RemoteJWKS {
        var tls: TLSConfiguration?
        var caPEM: [UInt8]?
        if let path = remote.caFile {
            let certificates: [NIOSSLCertificate]
            do {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
                caPEM = bytes
            } catch {
                throw position.error("auth provider '\(name)': cannot load the CA file \(path) (ca): \(ConfigLoader.describe(error))")
            }
            guard !certificates.isEmpty else {
                throw position.error("auth provider '\(name)': the CA file \(path) (ca) holds no PEM certificate")
            }
            tls = Self.tlsConfiguration(trustRoots: .certificates(certificates))
        }
        let settings = RemoteJWKS.Settings(remote, caPEM: caPEM)
        if let running = self.registry.withLock({ $0.keySets[name] }), running.settings == settings {
            self.registry.withLock { $0.pending[name] = running }
            return running
        }
        let keySet = RemoteJWKS(
            provider: name, remote: remote, settings: settings,
            fetcher: IdentityFetcher(client: self.httpClient, tls: tls, maxBytes: remote.maxBytes),
            metrics: self.metrics.keySet(name), logger: self.logger
        )
        try await keySet.discover(position: position)
        self.registry.withLock { $0.pending[name] = keySet }
        return keySet
    }

    /// Names the providers of the configuration being built, in configuration order.
    func stage(providers: [any AuthProvider]) {
        self.registry.withLock { $0.staged = providers }
    }

    /// The configuration built is now served: its new key sets start fetching, the ones it no longer uses stop.
    func commit() async {
        let (started, stopped) = self.registry.withLock { registry -> ([RemoteJWKS], [RemoteJWKS]) in
            let previous = registry.keySets
            // Only what the staged providers use (a build that failed before staging left nothing to keep).
            let names = Set((registry.staged ?? registry.providers).map(\.name))
            registry.keySets = registry.pending.filter { names.contains($0.key) }
            registry.pending = [:]
            if let staged = registry.staged { registry.providers = staged }
            registry.staged = nil
            let kept = Set(registry.keySets.values.map(ObjectIdentifier.init))
            let stopped = previous.values.filter { !kept.contains(ObjectIdentifier($0)) }
            if !registry.keySets.isEmpty && registry.ageTicker == nil && !registry.shutDown {
                registry.ageTicker = Task { [weak self] in await self?.publishAges() }
            }
            return (registry.shutDown ? [] : Array(registry.keySets.values), stopped)
        }
        for keySet in stopped { await keySet.stop() }
        for keySet in started { keySet.start() }
    }

    /// The build or reload failed: forget what it prepared (new key sets never started, so nothing runs).
    func discardPending() {
        self.registry.withLock { registry in
            registry.pending = [:]
            registry.staged = nil
        }
    }

    // MARK: State

    /// The providers served, in configuration order.
    var providers: [any AuthProvider] {
        self.registry.withLock { $0.providers }
    }

    /// The key set served for provider `name`.
    func keySet(named name: String) -> RemoteJWKS? {
        self.registry.withLock { $0.keySets[name] }
    }

    /// Why the proxy is not ready: a remote key set that has never loaded a key (its tokens get 401); nil when all
    /// have keys. For `GET /readyz`.
    var notReadyReason: String? {
        let keySets = self.registry.withLock { registry in registry.keySets.sorted { $0.key < $1.key }.map(\.value) }
        let reasons = keySets.compactMap(\.notReadyReason)
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }

    private func publishAges() async {
        while !Task.isCancelled {
            for keySet in self.registry.withLock({ Array($0.keySets.values) }) { keySet.publishAge() }
            do {
                try await Task.sleep(for: Self.agePublishInterval)
            } catch {
                return
            }
        }
    }

    /// Stops every key set, then the client (a client dropped without this traps in debug builds).
    func shutdown() async {
        let (keySets, ticker) = self.registry.withLock { registry in
            registry.shutDown = true
            let all = Array(registry.keySets.values) + Array(registry.pending.values)
            registry.keySets = [:]
            registry.pending = [:]
            registry.providers = []
            defer { registry.ageTicker = nil }
            return (all, registry.ageTicker)
        }
        ticker?.cancel()
        for keySet in keySets { await keySet.stop() }
        try? await self.httpClient.shutdown()
    }
}
