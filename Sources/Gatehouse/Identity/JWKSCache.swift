import Foundation
import NIOCore

/// Every decision about one remote key set, with no I/O and no clock: when to fetch in the background, whether an
/// unknown `kid` may refetch now, and what to keep when a fetch ends. ``RemoteJWKS`` holds the keys and does the
/// fetching; this says when.
///
/// - One fetch at a time: a fetch asked for while one runs joins it.
/// - A successful answer is cached for its `max-age` clamped to `[refreshMin, refreshMax]` (no `max-age`,
///   `no-cache` or `no-store`: `refreshMin`), and refreshed at nine tenths of that, before it expires.
/// - An unknown `kid` refetches at most once per `refetchMin`, however many tokens carry one.
/// - A failed fetch, or an answer without one usable key, keeps the keys held (never an empty set) and is retried
///   after 1 s, 2 s, 4 s... up to `refreshMin`.
struct JWKSCache: Sendable {
    struct Policy: Sendable {
        var refreshMin: TimeAmount
        var refreshMax: TimeAmount
        var refetchMin: TimeAmount
        /// First retry delay after a failure; doubles per consecutive failure up to `refreshMin`.
        var retryMin: TimeAmount = .seconds(1)
    }

    /// How a fetch ended, as far as the cache cares.
    enum FetchResult: Sendable, Equatable {
        /// An answer with `usableKeys` keys and the answer's `max-age`, if it gave one.
        case keys(usableKeys: Int, maxAge: TimeAmount?)
        /// 304: the keys held are still current.
        case notModified(maxAge: TimeAmount?)
        /// No answer to use; `reason` comes from a fixed set of texts (no token bytes).
        case failed(reason: String)
    }

    /// What to do with the keys of an ended fetch.
    enum KeepDecision: Sendable, Equatable {
        /// Install the fetched keys.
        case replace
        /// Keep the keys held (none yet, or the last good ones).
        case keepCurrent
    }

    /// What a token whose `kid` is unknown (or that arrives before any key) waits for.
    enum MissDecision: Sendable, Equatable {
        /// A fetch runs: wait for it, then look again.
        case join
        /// Start a fetch and wait for it.
        case fetch
        /// Refuse now: a refetch ran less than `refetchMin` ago (or no keys are held and none is being fetched).
        case refuse
    }

    let policy: Policy
    private(set) var fetchInFlight = false
    /// Keys have been installed at least once.
    private(set) var hasKeys = false
    /// When the background fetch is due.
    private(set) var nextRefresh: NIODeadline
    /// When the keys held stop being fresh (they are kept and used past it).
    private(set) var expiresAt: NIODeadline?
    private(set) var lastSuccess: NIODeadline?
    private(set) var lastKidMissRefetch: NIODeadline?
    private(set) var consecutiveFailures = 0
    private(set) var lastError: String?

    /// A new cache wants its first fetch at once.
    init(policy: Policy, now: NIODeadline) {
        self.policy = policy
        self.nextRefresh = now
    }

    /// The background timer fired (or the set just started): true when a fetch should start now.
    mutating func refreshDue(now: NIODeadline) -> Bool {
        guard !self.fetchInFlight, now >= self.nextRefresh else { return false }
        self.fetchInFlight = true
        return true
    }

    /// A token named a `kid` the held keys lack.
    mutating func unknownKeyID(now: NIODeadline) -> MissDecision {
        if self.fetchInFlight { return .join }
        if let last = self.lastKidMissRefetch, now - last < self.policy.refetchMin { return .refuse }
        self.lastKidMissRefetch = now
        self.fetchInFlight = true
        return .fetch
    }

    /// A token arrived before any key: it may wait for a fetch already running, but starts none (the background
    /// retries on its own schedule, so a burst of tokens while the provider is down costs it nothing).
    func noKeysYet() -> MissDecision {
        self.fetchInFlight ? .join : .refuse
    }

    /// A fetch ended at `now`.
    mutating func fetchEnded(_ result: FetchResult, now: NIODeadline) -> KeepDecision {
        self.fetchInFlight = false
        switch result {
        case .keys(let usable, let maxAge) where usable > 0:
            self.succeeded(maxAge: maxAge, now: now)
            self.hasKeys = true
            return .replace
        case .keys:
            self.failed("the answer holds no usable signing key", now: now)
            return .keepCurrent
        case .notModified(let maxAge):
            // A 304 is only possible after an answer with an ETag, i.e. with keys held.
            if self.hasKeys {
                self.succeeded(maxAge: maxAge, now: now)
            } else {
                self.failed("304 Not Modified without keys held", now: now)
            }
            return .keepCurrent
        case .failed(let reason):
            self.failed(reason, now: now)
            return .keepCurrent
        }
    }

    /// The set was stopped: nothing is in flight any more.
    mutating func stopped() {
        self.fetchInFlight = false
    }

    /// How long an answer with `maxAge` is fresh.
    func lifetime(maxAge: TimeAmount?) -> TimeAmount {
        let requested = maxAge ?? self.policy.refreshMin
        return min(max(requested, self.policy.refreshMin), self.policy.refreshMax)
    }

    /// Delay before retry number `failures` (1-based).
    func retryDelay(failures: Int) -> TimeAmount {
        let cap = max(self.policy.refreshMin, self.policy.retryMin)
        var delay = self.policy.retryMin
        for _ in 1..<max(1, min(failures, 32)) where delay < cap {
            delay = delay * 2
        }
        return min(delay, cap)
    }

    private mutating func succeeded(maxAge: TimeAmount?, now: NIODeadline) {
        let lifetime = self.lifetime(maxAge: maxAge)
        self.lastSuccess = now
        self.expiresAt = now + lifetime
        // Refresh before expiry, so the keys in use are never past their lifetime while the provider answers.
        self.nextRefresh = now + lifetime - .nanoseconds(lifetime.nanoseconds / 10)
        self.consecutiveFailures = 0
        self.lastError = nil
    }

    private mutating func failed(_ reason: String, now: NIODeadline) {
        self.consecutiveFailures += 1
        self.lastError = reason
        self.nextRefresh = now + self.retryDelay(failures: self.consecutiveFailures)
    }

    /// `max-age` of a `Cache-Control` value; zero for `no-cache` and `no-store` (the lifetime is then clamped up to
    /// `refreshMin`); nil when the value sets neither.
    static func maxAge(cacheControl: String) -> TimeAmount? {
        var result: TimeAmount?
        for directive in cacheControl.split(separator: ",") {
            let parts = directive.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let name = parts.first?.lowercased() else { continue }
            switch name {
            case "no-cache", "no-store":
                return .zero
            case "max-age" where parts.count == 2:
                let value = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                // Absurd values are clamped by refreshMax anyway; bound the parse.
                guard value.utf8.count <= 12, let seconds = Int64(value), seconds >= 0 else { continue }
                result = .seconds(seconds)
            default:
                continue
            }
        }
        return result
    }
}
