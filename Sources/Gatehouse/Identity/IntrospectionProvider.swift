import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// Opaque tokens checked at an RFC 7662 introspection endpoint.
///
/// Answers are cached by SHA-256 of the token (``IntrospectionCache``); concurrent misses for one token share one
/// request; requests toward the endpoint are capped (``IntrospectionLimiter``). When the endpoint gives no usable
/// answer the verdict is `on_error`'s: 503 or 401, never an acceptance. Nothing here logs: the token, the client
/// secret and the `Authorization` header stay out of every log.
final class IntrospectionProvider: AuthProvider {
    /// Callers waiting for a request slot beyond `max_concurrent`, at most; more get `on_error` at once.
    static let maxWaiting = 1024

    private struct State {
        var cache: IntrospectionCache
        /// Requests in flight by token hash: later misses for the same token await the same task.
        var inFlight: [IntrospectionCache.Key: Task<Result<IntrospectionAnswer, IntrospectionFailure>, Never>] = [:]
        var lastError: (failure: IntrospectionFailure, at: Date)?
    }

    let name: String
    private let config: IntrospectionProviderConfig
    /// Nil in `gatehouse check`, where nothing is fetched.
    private let client: IntrospectionClient?
    private let limiter: IntrospectionLimiter
    private let metrics: IntrospectionMetrics
    private let state: NIOLockedValueBox<State>

    init(name: String, config: IntrospectionProviderConfig, client: IntrospectionClient?, limiter: IntrospectionLimiter, metrics: IntrospectionMetrics) {
        self.name = name
        self.config = config
        self.client = client
        self.limiter = limiter
        self.metrics = metrics
        let cache = IntrospectionCache(
            capacity: config.cacheSize, positiveTTL: Self.seconds(config.cacheTTL), negativeTTL: Self.seconds(config.negativeCacheTTL)
        )
        self.state = NIOLockedValueBox(State(cache: cache))
    }

    /// Builds the provider: reads its client credentials from the environment and its CA file. `identity` is nil
    /// where nothing may be fetched (`gatehouse check`): everything is still checked.
    static func make(
        _ config: IntrospectionProviderConfig, name: String, environment: [String: String], identity: IdentityRuntime?,
        metrics: ProxyMetrics
    ) throws(ConfigError) -> IntrospectionProvider {
        let clientID = try Self.variable(config.clientIDEnv, key: "client_id_env", provider: name, at: config.clientIDEnvPosition, environment)
        let secret = try Self.variable(config.clientSecretEnv, key: "client_secret_env", provider: name, at: config.clientSecretEnvPosition, environment)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let path = config.ca, let position = config.caPosition {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMBytes([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
            } catch {
                throw position.error("cannot read CA file \(path) (ca of auth provider '\(name)'): \(ConfigLoader.describe(error))")
            }
            guard !certificates.isEmpty else {
                throw position.error("CA file \(path) (ca of auth provider '\(name)') holds no PEM certificate")
            }
            tls.trustRoots = .certificates(certificates)
        }
        let limiter = IntrospectionLimiter(permits: config.maxConcurrent, maxWaiting: Self.maxWaiting)
        let client = identity.map { identity in
            IntrospectionClient(
                httpClient: identity.httpClient, endpoint: config.endpoint,
                authorization: IntrospectionRequest.basicAuthorization(clientID: clientID, clientSecret: secret), tls: tls,
                timeout: config.timeout, maxResponseBytes: config.maxResponseBytes, limiter: limiter
            )
        }
        return IntrospectionProvider(
            name: name, config: config, client: client, limiter: limiter,
            metrics: IntrospectionMetrics(provider: name, factory: metrics.factory)
        )
    }

    private static func variable(
        _ variable: String, key: String, provider: String, at position: ConfigPosition, _ environment: [String: String]
    ) throws(ConfigError) -> String {
        guard let value = environment[variable], !value.isEmpty else {
            throw position.error("environment variable \(variable) (\(key) of auth provider '\(provider)') is not set")
        }
        return value
    }

    func verify(_ token: String, now: Date) async -> AuthVerdict {
        let key = IntrospectionCache.key(for: token)
        enum Step {
            case cached(IntrospectionAnswer)
            case wait(Task<Result<IntrospectionAnswer, IntrospectionFailure>, Never>)
        }
        let step = self.state.withLockedValue { state -> Step in
            if let answer = state.cache.lookup(key, now: now) { return .cached(answer) }
            if let running = state.inFlight[key] { return .wait(running) }
            // Unstructured on purpose: a handshake that gives up must not cancel the answer others wait for.
            let task = Task { await self.fetch(token, key: key) }
            state.inFlight[key] = task
            return .wait(task)
        }
        let result: Result<IntrospectionAnswer, IntrospectionFailure>
        switch step {
        case .cached(let answer):
            self.metrics.cacheHits.increment()
            result = .success(answer)
        case .wait(let task):
            result = await task.value
        }
        switch result {
        case .success(let answer):
            return answer.verdict(provider: self.name, issuer: self.config.issuer, audience: self.config.audience, now: now)
        case .failure(let failure):
            switch self.config.onError {
            case .unavailable: return .unavailable(failure.rawValue)
            case .unauthorized: return .rejected(.introspectionFailed)
            }
        }
    }

    /// Asks the endpoint, counts the result, caches an answer and retires the in-flight entry.
    private func fetch(_ token: String, key: IntrospectionCache.Key) async -> Result<IntrospectionAnswer, IntrospectionFailure> {
        let result: Result<IntrospectionAnswer, IntrospectionFailure>
        if let client = self.client {
            do throws(IntrospectionFailure) {
                result = .success(try await client.introspect(token))
            } catch {
                result = .failure(error)
            }
        } else {
            result = .failure(.notStarted)
        }
        switch result {
        case .success(.active): self.metrics.active.increment()
        case .success(.inactive): self.metrics.inactive.increment()
        case .failure: self.metrics.error.increment()
        }
        let received = Date()
        self.state.withLockedValue { state in
            state.inFlight[key] = nil
            switch result {
            case .success(let answer): state.cache.store(answer, for: key, now: received)
            case .failure(let failure): state.lastError = (failure, received)
            }
        }
        return result
    }

    func state() async -> AuthProviderState {
        let (entries, tokens, lastError) = self.state.withLockedValue { state in
            (state.cache.count, state.inFlight.count, state.lastError)
        }
        let details: [String: any Sendable] = [
            "endpoint": self.config.endpoint,
            "on_error": self.config.onError.rawValue,
            "cache_entries": entries,
            "tokens_in_flight": tokens,
            "requests_in_flight": self.limiter.inUse,
            "requests_waiting": self.limiter.waiting,
            "last_error": lastError?.failure.rawValue as (any Sendable),
            "last_error_at": lastError.map { $0.at.formatted(.iso8601) } as (any Sendable),
        ]
        return AuthProviderState(name: self.name, type: "introspection", details: details)
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        let (seconds, attoseconds) = duration.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
