import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// The public keys of one JWT provider, fetched from `jwks_url` (or the `jwks_uri` of `oidc_issuer`'s discovery
/// document) and kept fresh in the background; ``JWKSCache`` decides when, this does the fetching.
///
/// Verification reads the keys under a lock, without waiting. Only a token whose `kid` is unknown (or one that
/// arrives while the first fetch runs) waits, for one shared fetch bounded by `jwks_timeout`.
final class RemoteJWKS: Sendable {
    /// What makes two key sets interchangeable across a reload (the position in the file does not).
    struct Settings: Sendable, Equatable {
        var source: JWTProviderConfig.Remote.Source
        var caFile: String?
        /// The CA file's content at load: a replaced CA file is a change.
        var caPEM: [UInt8]?
        var refreshMin: Duration
        var refreshMax: Duration
        var refetchMin: Duration
        var timeout: Duration
        var maxBytes: Int

        init(_ remote: JWTProviderConfig.Remote, caPEM: [UInt8]?) {
            self.source = remote.source
            self.caFile = remote.caFile
            self.caPEM = caPEM
            self.refreshMin = remote.refreshMin
            self.refreshMax = remote.refreshMax
            self.refetchMin = remote.refetchMin
            self.timeout = remote.timeout
            self.maxBytes = remote.maxBytes
        }
    }

    /// What a lookup found.
    enum Lookup: Sendable {
        case key(JWTProvider.PublicKey)
        /// Keys are held, none fits (after the refetch it was allowed, if any).
        case unknown
        /// No key has been fetched yet.
        case notLoaded
    }

    /// What `GET /auth` shows.
    struct Snapshot: Sendable {
        var keyIDs: [String]
        var source: String
        var jwksURL: String?
        var fetchedAt: Date?
        var nextRefresh: Date?
        var expiresAt: Date?
        var lastError: String?
        var lastErrorAt: Date?
        var consecutiveFailures: Int
        var skipped: [String]
    }

    private struct State {
        var cache: JWKSCache
        var keys: [String: JWTProvider.PublicKey] = [:]
        /// The JWKS address: `jwks_url`, or from discovery (nil until discovery answered).
        var jwksURL: String?
        var etag: String?
        var fetchedAt: Date?
        var lastErrorAt: Date?
        var skipped: [String] = []
        var fetchTask: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var started = false
        var stopped = false
    }

    let provider: String
    let settings: Settings
    private let remote: JWTProviderConfig.Remote
    private let fetcher: IdentityFetcher
    private let metrics: IdentityMetrics.KeySet
    private let logger: Logger
    private let state: Mutex<State>

    init(provider: String, remote: JWTProviderConfig.Remote, settings: Settings, fetcher: IdentityFetcher, metrics: IdentityMetrics.KeySet, logger: Logger) {
        self.provider = provider
        self.remote = remote
        self.settings = settings
        self.fetcher = fetcher
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "provider"] = "\(provider)"
        self.logger = logger
        let policy = JWKSCache.Policy(
            refreshMin: Self.amount(remote.refreshMin), refreshMax: Self.amount(remote.refreshMax), refetchMin: Self.amount(remote.refetchMin)
        )
        var state = State(cache: JWKSCache(policy: policy, now: .now()))
        if case .jwksURL(let url) = remote.source { state.jwksURL = url }
        self.state = Mutex(state)
    }

    // MARK: Lookups

    /// The key for `kid` (nil: the only key, if there is exactly one). An unknown kid may wait for one refetch.
    func key(for kid: String?) async -> Lookup {
        let first: (Lookup?, Task<Void, Never>?) = self.state.withLock { state in
            if let key = Self.select(kid, in: state.keys) { return (.key(key), nil) }
            guard !state.stopped else { return (state.cache.hasKeys ? .unknown : .notLoaded, nil) }
            let decision: JWKSCache.MissDecision
            if !state.cache.hasKeys {
                decision = state.cache.noKeysYet()
            } else if kid == nil {
                // Several keys and no kid: ambiguous whatever a refetch brings.
                decision = .refuse
            } else {
                decision = state.cache.unknownKeyID(now: .now())
            }
            switch decision {
            case .refuse:
                return (state.cache.hasKeys ? .unknown : .notLoaded, nil)
            case .join:
                return (nil, state.fetchTask)
            case .fetch:
                self.metrics.kidMissRefetches.increment()
                self.logger.info("unknown kid: refetching the key set")
                return (nil, self.startFetch(&state))
            }
        }
        if let found = first.0 { return found }
        await first.1?.value
        return self.state.withLock { state in
            if let key = Self.select(kid, in: state.keys) { return .key(key) }
            return state.cache.hasKeys ? .unknown : .notLoaded
        }
    }

    private static func select(_ kid: String?, in keys: [String: JWTProvider.PublicKey]) -> JWTProvider.PublicKey? {
        if let kid { return keys[kid] }
        return keys.count == 1 ? keys.values.first : nil
    }

    /// Why the provider cannot verify yet (no key fetched), or nil.
    var notReadyReason: String? {
        self.state.withLock { state in
            guard !state.cache.hasKeys else { return nil }
            let reason = state.cache.lastError.map { "last fetch failed: \($0)" } ?? "first fetch running"
            return "auth provider '\(self.provider)': no keys from \(self.remote.url) yet (\(reason))"
        }
    }

    var snapshot: Snapshot {
        let now = NIODeadline.now()
        let wall = Date()
        func date(_ deadline: NIODeadline?) -> Date? {
            deadline.map { wall.addingTimeInterval(Double(($0 - now).nanoseconds) / 1e9) }
        }
        return self.state.withLock { state in
            Snapshot(
                keyIDs: state.keys.keys.sorted(), source: self.remote.url, jwksURL: state.jwksURL, fetchedAt: state.fetchedAt,
                nextRefresh: state.stopped ? nil : date(state.cache.nextRefresh), expiresAt: date(state.cache.expiresAt),
                lastError: state.cache.lastError, lastErrorAt: state.lastErrorAt,
                consecutiveFailures: state.cache.consecutiveFailures, skipped: state.skipped
            )
        }
    }

    /// Records the age of the keys held (called periodically: an age changes without events).
    func publishAge() {
        let fetchedAt = self.state.withLock { $0.fetchedAt }
        self.metrics.age.record(fetchedAt.map { Date().timeIntervalSince($0).rounded() } ?? -1)
    }

    // MARK: Start-up discovery

    /// With `oidc_issuer`, fetches the discovery document once: a document for another issuer (or naming a JWKS
    /// that may not be fetched) is a configuration error; an unreachable provider is not (the background retries).
    func discover(position: ConfigPosition) async throws(ConfigError) {
        guard case .oidcIssuer(let issuer) = self.remote.source else { return }
        let url = JWTProviderConfig.Remote.discoveryURL(issuer: issuer)
        do throws(IdentityFetcher.Failure) {
            let jwksURL = try await self.discoverJWKS(issuer: issuer)
            self.state.withLock { $0.jwksURL = jwksURL }
        } catch {
            if case .misconfigured(let message) = error {
                throw position.error("auth provider '\(self.provider)': \(message)")
            }
            self.logger.warning(
                "identity provider discovery failed at start-up; starting anyway and retrying in the background",
                metadata: ["url": "\(url)", "error": "\(error)"]
            )
        }
    }

    private func discoverJWKS(issuer: String) async throws(IdentityFetcher.Failure) -> String {
        let url = JWTProviderConfig.Remote.discoveryURL(issuer: issuer)
        let fetcher = self.fetcher
        let timeout = Self.amount(self.remote.timeout)
        let answer = try await IdentityFetcher.withDeadline(timeout) { () async throws(IdentityFetcher.Failure) -> IdentityFetcher.Answer in
            try await fetcher.get(url, accept: "application/json", timeout: timeout)
        }
        guard case .document(let body, _, _) = answer else { throw .invalid("\(url) answered 304 to an unconditional request") }
        do {
            return try OIDCDiscovery.parse(body, expectedIssuer: issuer).jwksURI
        } catch {
            throw error.isConfigurationError ? .misconfigured(error.message(url: url)) : .invalid(error.message(url: url))
        }
    }

    // MARK: Background

    /// Starts the background fetching: the first fetch at once, so a token arriving right after start-up finds it
    /// in flight and waits for it rather than being refused.
    func start() {
        self.state.withLock { state in
            guard !state.started, !state.stopped else { return }
            state.started = true
            if state.cache.refreshDue(now: .now()) {
                _ = self.startFetch(&state)
            } else {
                self.schedule(&state)
            }
        }
    }

    /// Stops the timer and any fetch, and waits for the fetch to end.
    func stop() async {
        let task = self.state.withLock { state -> Task<Void, Never>? in
            state.stopped = true
            state.timer?.cancel()
            state.timer = nil
            state.fetchTask?.cancel()
            return state.fetchTask
        }
        await task?.value
    }

    private func schedule(_ state: inout State) {
        state.timer?.cancel()
        state.timer = nil
        guard !state.stopped, state.started, !state.cache.fetchInFlight else { return }
        let delay = max(0, (state.cache.nextRefresh - .now()).nanoseconds)
        state.timer = Task { [weak self] in
            do {
                try await Task.sleep(nanoseconds: UInt64(delay))
            } catch {
                return
            }
            self?.timerFired()
        }
    }

    private func timerFired() {
        self.state.withLock { state in
            guard !state.stopped else { return }
            if state.cache.refreshDue(now: .now()) {
                _ = self.startFetch(&state)
            } else {
                self.schedule(&state)
            }
        }
    }

    /// Starts the fetch the cache just decided (it counts it in flight).
    private func startFetch(_ state: inout State) -> Task<Void, Never> {
        state.timer?.cancel()
        state.timer = nil
        let task = Task { await self.fetch() }
        state.fetchTask = task
        return task
    }

    private func fetch() async {
        let (known, etag) = self.state.withLock { ($0.jwksURL, $0.etag) }
        let outcome: Result<IdentityFetcher.Answer, IdentityFetcher.Failure>
        do throws(IdentityFetcher.Failure) {
            outcome = .success(try await self.fetchAnswer(known: known, etag: etag))
        } catch {
            outcome = .failure(error)
        }
        var document: JWKSDocument?
        let result: JWKSCache.FetchResult
        let label: String
        switch outcome {
        case .success(.document(let body, let maxAge, _)):
            let url = self.state.withLock { $0.jwksURL } ?? self.remote.url
            do {
                let parsed = try await JWKSDocument.parse(body, source: url, mode: .lenient)
                document = parsed
                result = .keys(usableKeys: parsed.keys.count, maxAge: maxAge)
                label = parsed.keys.isEmpty ? "error" : "ok"
            } catch {
                result = .failed(reason: error.message)
                label = "error"
            }
        case .success(.notModified(let maxAge)):
            result = .notModified(maxAge: maxAge)
            label = "not_modified"
        case .failure(let failure):
            result = .failed(reason: failure.description)
            label = failure.metricResult
        }
        if case .failure(.cancelled) = outcome {
            self.state.withLock { state in
                state.cache.stopped()
                state.fetchTask = nil
            }
            return
        }
        self.metrics.fetched(label)
        let etagOfAnswer: String?
        if case .success(.document(_, _, let tag)) = outcome { etagOfAnswer = tag } else { etagOfAnswer = nil }
        let (decision, previous, held, error) = self.state.withLock { state in
            let decision = state.cache.fetchEnded(result, now: .now())
            let previous = Set(state.keys.keys)
            if decision == .replace, let document {
                state.keys = document.keys
                state.skipped = document.skipped
                state.etag = etagOfAnswer
            }
            if decision == .replace || Self.isNotModified(result) && state.cache.lastError == nil {
                state.fetchedAt = Date()
            }
            if state.cache.lastError != nil { state.lastErrorAt = Date() }
            state.fetchTask = nil
            self.schedule(&state)
            return (decision, previous, state.keys.count, state.cache.lastError)
        }
        self.metrics.keys.record(held)
        self.publishAge()
        if let error {
            self.logger.warning(
                held > 0 ? "key set fetch failed; keeping the last good keys" : "key set fetch failed; no keys yet",
                metadata: ["error": "\(error)", "keys": "\(held)"]
            )
        } else if decision == .replace, let document, Set(document.keys.keys) != previous {
            self.logger.info(
                "key set loaded", metadata: ["kids": "\(document.keys.keys.sorted().joined(separator: ","))", "skipped": "\(document.skipped.count)"]
            )
        }
    }

    private static func isNotModified(_ result: JWKSCache.FetchResult) -> Bool {
        if case .notModified = result { return true }
        return false
    }

    /// Discovery when the JWKS address is not known yet, then the JWKS, all within one `jwks_timeout`.
    private func fetchAnswer(known: String?, etag: String?) async throws(IdentityFetcher.Failure) -> IdentityFetcher.Answer {
        let timeout = Self.amount(self.remote.timeout)
        let fetcher = self.fetcher
        let source = self.remote.source
        let found = try await IdentityFetcher.withDeadline(timeout) { () async throws(IdentityFetcher.Failure) -> (String, IdentityFetcher.Answer) in
            var url = known
            if url == nil, case .oidcIssuer(let issuer) = source {
                url = try await self.discoverJWKS(issuer: issuer)
            }
            guard let url else { throw .invalid("no JWKS address") }
            let answer = try await fetcher.get(url, accept: "application/jwk-set+json, application/json", etag: known == nil ? nil : etag, timeout: timeout)
            return (url, answer)
        }
        if known == nil {
            self.state.withLock { $0.jwksURL = found.0 }
        }
        return found.1
    }

    private static func amount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
