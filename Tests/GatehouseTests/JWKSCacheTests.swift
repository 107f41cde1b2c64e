import NIOCore
import Testing
@testable import Gatehouse

/// The decisions of a remote key set, with the time passed in: refresh schedule, kid-miss rate limit, what is kept
/// when a fetch fails.
@Suite("JWKS cache")
struct JWKSCacheTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    static let policy = JWKSCache.Policy(refreshMin: .seconds(60), refreshMax: .seconds(3600), refetchMin: .seconds(30))

    /// A cache that loaded `keys` keys at `start` with `maxAge`.
    static func loaded(keys: Int = 2, maxAge: TimeAmount? = .seconds(600)) -> JWKSCache {
        var cache = JWKSCache(policy: Self.policy, now: Self.start)
        _ = cache.refreshDue(now: Self.start)
        _ = cache.fetchEnded(.keys(usableKeys: keys, maxAge: maxAge), now: Self.start)
        return cache
    }

    @Test func aNewCacheFetchesAtOnceAndOnlyOnce() {
        var cache = JWKSCache(policy: Self.policy, now: Self.start)
        let due1 = cache.refreshDue(now: Self.start)
        #expect(due1)
        #expect(cache.fetchInFlight)
        let due2 = cache.refreshDue(now: Self.start + .seconds(5))
        #expect(!due2, "a second fetch while one runs")
        #expect(!cache.hasKeys)
    }

    @Test func maxAgeIsClampedBetweenRefreshMinAndMax() {
        let cache = JWKSCache(policy: Self.policy, now: Self.start)
        #expect(cache.lifetime(maxAge: .seconds(600)) == .seconds(600))
        #expect(cache.lifetime(maxAge: .seconds(5)) == .seconds(60))
        #expect(cache.lifetime(maxAge: .seconds(86400)) == .seconds(3600))
        #expect(cache.lifetime(maxAge: nil) == .seconds(60), "no max-age: refresh_min")
        #expect(cache.lifetime(maxAge: .zero) == .seconds(60), "no-cache: refresh_min")
    }

    @Test func refreshHappensBeforeExpiry() {
        var cache = Self.loaded(maxAge: .seconds(600))
        #expect(cache.expiresAt == Self.start + .seconds(600))
        #expect(cache.nextRefresh == Self.start + .seconds(540))
        let due3 = cache.refreshDue(now: Self.start + .seconds(539))
        #expect(!due3)
        let due4 = cache.refreshDue(now: Self.start + .seconds(540))
        #expect(due4)
    }

    @Test func cacheControlIsRead() {
        #expect(JWKSCache.maxAge(cacheControl: "public, max-age=300") == .seconds(300))
        #expect(JWKSCache.maxAge(cacheControl: "max-age=\"120\", must-revalidate") == .seconds(120))
        #expect(JWKSCache.maxAge(cacheControl: "no-cache") == .zero)
        #expect(JWKSCache.maxAge(cacheControl: "max-age=600, no-store") == .zero)
        #expect(JWKSCache.maxAge(cacheControl: "") == nil)
        #expect(JWKSCache.maxAge(cacheControl: "max-age=-5") == nil)
        #expect(JWKSCache.maxAge(cacheControl: "max-age=99999999999999999999") == nil)
    }

    @Test func anUnknownKidRefetchesOncePerRefetchMin() {
        var cache = Self.loaded()
        let t = Self.start + .seconds(100)
        let miss5 = cache.unknownKeyID(now: t)
        #expect(miss5 == .fetch)
        // Concurrent misses join the fetch.
        for _ in 0..<1000 {
            let miss6 = cache.unknownKeyID(now: t + .milliseconds(1))
            #expect(miss6 == .join)
        }
        _ = cache.fetchEnded(.keys(usableKeys: 2, maxAge: .seconds(600)), now: t + .milliseconds(50))
        // After it: refused until refetch_min passed, however many come.
        for step in 0..<1000 {
            let miss7 = cache.unknownKeyID(now: t + .milliseconds(100 + Int64(step)))
            #expect(miss7 == .refuse)
        }
        let miss8 = cache.unknownKeyID(now: t + .seconds(29))
        #expect(miss8 == .refuse)
        let miss9 = cache.unknownKeyID(now: t + .seconds(30))
        #expect(miss9 == .fetch)
    }

    @Test func aKidMissJoinsABackgroundRefresh() {
        var cache = Self.loaded()
        let due10 = cache.refreshDue(now: Self.start + .seconds(540))
        #expect(due10)
        let miss11 = cache.unknownKeyID(now: Self.start + .seconds(540))
        #expect(miss11 == .join)
        #expect(cache.lastKidMissRefetch == nil, "joining costs no refetch")
    }

    @Test func tokensBeforeTheFirstKeysWaitOnlyForAFetchAlreadyRunning() {
        var cache = JWKSCache(policy: Self.policy, now: Self.start)
        #expect(cache.noKeysYet() == .refuse)
        _ = cache.refreshDue(now: Self.start)
        #expect(cache.noKeysYet() == .join)
    }

    @Test func aFailedFetchKeepsTheKeysAndRetriesWithBackoff() {
        var cache = Self.loaded()
        let t = Self.start + .seconds(540)
        let due12 = cache.refreshDue(now: t)
        #expect(due12)
        let kept13 = cache.fetchEnded(.failed(reason: "HTTP status 503"), now: t)
        #expect(kept13 == .keepCurrent)
        #expect(cache.hasKeys)
        #expect(cache.lastError == "HTTP status 503")
        #expect(cache.consecutiveFailures == 1)
        #expect(cache.nextRefresh == t + .seconds(1))
        let due14 = cache.refreshDue(now: t + .seconds(1))
        #expect(due14)
        _ = cache.fetchEnded(.failed(reason: "timeout"), now: t + .seconds(1))
        #expect(cache.nextRefresh == t + .seconds(3), "2 s after the second failure")
        #expect(cache.retryDelay(failures: 3) == .seconds(4))
        #expect(cache.retryDelay(failures: 30) == .seconds(60), "capped at refresh_min")
        #expect(cache.retryDelay(failures: 1_000_000) == .seconds(60))
        // Success resets.
        let due15 = cache.refreshDue(now: t + .seconds(3))
        #expect(due15)
        let kept16 = cache.fetchEnded(.keys(usableKeys: 1, maxAge: nil), now: t + .seconds(3))
        #expect(kept16 == .replace)
        #expect(cache.consecutiveFailures == 0)
        #expect(cache.lastError == nil)
    }

    @Test func anAnswerWithoutUsableKeysCountsAsAFailure() {
        var cache = Self.loaded()
        let miss17 = cache.unknownKeyID(now: Self.start + .seconds(100))
        #expect(miss17 == .fetch)
        let kept18 = cache.fetchEnded(.keys(usableKeys: 0, maxAge: .seconds(600)), now: Self.start + .seconds(101))
        #expect(kept18 == .keepCurrent)
        #expect(cache.lastError == "the answer holds no usable signing key")
        #expect(cache.hasKeys)
        var empty = JWKSCache(policy: Self.policy, now: Self.start)
        _ = empty.refreshDue(now: Self.start)
        let kept19 = empty.fetchEnded(.keys(usableKeys: 0, maxAge: nil), now: Self.start)
        #expect(kept19 == .keepCurrent)
        #expect(!empty.hasKeys)
    }

    @Test func notModifiedExtendsTheKeysHeld() {
        var cache = Self.loaded(maxAge: .seconds(600))
        let t = Self.start + .seconds(540)
        let due20 = cache.refreshDue(now: t)
        #expect(due20)
        let kept21 = cache.fetchEnded(.notModified(maxAge: .seconds(600)), now: t)
        #expect(kept21 == .keepCurrent)
        #expect(cache.lastSuccess == t)
        #expect(cache.nextRefresh == t + .seconds(540))
        var fresh = JWKSCache(policy: Self.policy, now: Self.start)
        _ = fresh.refreshDue(now: Self.start)
        _ = fresh.fetchEnded(.notModified(maxAge: nil), now: Self.start)
        #expect(!fresh.hasKeys)
        #expect(fresh.lastError != nil, "a 304 without keys held is a failure")
    }

    @Test func aStoppedFetchLeavesNothingInFlight() {
        var cache = JWKSCache(policy: Self.policy, now: Self.start)
        _ = cache.refreshDue(now: Self.start)
        cache.stopped()
        #expect(!cache.fetchInFlight)
    }
}
