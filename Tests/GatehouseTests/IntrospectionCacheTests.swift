import Foundation
import Testing
@testable import Gatehouse

/// The pure parts of introspection: the answer cache with injected time, answer parsing, the verdict, the request's
/// encoding and the concurrency cap.
@Suite("Introspection cache")
struct IntrospectionCacheTests {
    let t0 = Date(timeIntervalSince1970: 1_700_000_000)

    func active(exp: Date? = nil, sub: String = "alice") -> IntrospectionAnswer {
        .active(IntrospectionClaims(subject: sub, scopes: ["a"], expiresAt: exp))
    }

    func key(_ token: String) -> IntrospectionCache.Key { IntrospectionCache.key(for: token) }

    @Test func activeAnswersLiveForTheTTL() {
        var cache = IntrospectionCache(capacity: 10, positiveTTL: 60, negativeTTL: 10)
        cache.store(self.active(), for: self.key("t"), now: self.t0)
        #expect(cache.lookup(self.key("t"), now: self.t0.addingTimeInterval(59.9)) == self.active())
        #expect(cache.lookup(self.key("t"), now: self.t0.addingTimeInterval(60)) == nil)
        // The expired entry is dropped on lookup.
        #expect(cache.count == 0)
        #expect(cache.lookup(self.key("other"), now: self.t0) == nil)
    }

    @Test func activeAnswersNeverOutliveTheirExp() {
        var cache = IntrospectionCache(capacity: 10, positiveTTL: 60, negativeTTL: 10)
        let answer = self.active(exp: self.t0.addingTimeInterval(5))
        cache.store(answer, for: self.key("t"), now: self.t0)
        #expect(cache.lookup(self.key("t"), now: self.t0.addingTimeInterval(4.9)) == answer)
        #expect(cache.lookup(self.key("t"), now: self.t0.addingTimeInterval(5)) == nil)
        // An exp beyond the TTL does not extend it.
        let later = self.active(exp: self.t0.addingTimeInterval(3600))
        cache.store(later, for: self.key("u"), now: self.t0)
        #expect(cache.lookup(self.key("u"), now: self.t0.addingTimeInterval(60)) == nil)
    }

    @Test func answersAlreadyExpiredAreNotKept() {
        var cache = IntrospectionCache(capacity: 10, positiveTTL: 60, negativeTTL: 10)
        cache.store(self.active(exp: self.t0.addingTimeInterval(-1)), for: self.key("t"), now: self.t0)
        #expect(cache.count == 0)
        var noCache = IntrospectionCache(capacity: 10, positiveTTL: 0, negativeTTL: 0)
        noCache.store(self.active(), for: self.key("t"), now: self.t0)
        noCache.store(.inactive, for: self.key("u"), now: self.t0)
        #expect(noCache.count == 0)
    }

    @Test func inactiveAnswersLiveForTheNegativeTTL() {
        var cache = IntrospectionCache(capacity: 10, positiveTTL: 60, negativeTTL: 10)
        cache.store(.inactive, for: self.key("t"), now: self.t0)
        #expect(cache.lookup(self.key("t"), now: self.t0.addingTimeInterval(9.9)) == .inactive)
        #expect(cache.lookup(self.key("t"), now: self.t0.addingTimeInterval(10)) == nil)
    }

    @Test func aNewAnswerReplacesTheOldOne() {
        var cache = IntrospectionCache(capacity: 10, positiveTTL: 60, negativeTTL: 10)
        cache.store(self.active(), for: self.key("t"), now: self.t0)
        cache.store(.inactive, for: self.key("t"), now: self.t0.addingTimeInterval(1))
        #expect(cache.count == 1)
        #expect(cache.lookup(self.key("t"), now: self.t0.addingTimeInterval(2)) == .inactive)
    }

    @Test func whenFullTheOldestGoes() {
        var cache = IntrospectionCache(capacity: 3, positiveTTL: 60, negativeTTL: 10)
        for (index, token) in ["a", "b", "c", "d"].enumerated() {
            cache.store(self.active(sub: token), for: self.key(token), now: self.t0.addingTimeInterval(Double(index)))
        }
        #expect(cache.count == 3)
        let now = self.t0.addingTimeInterval(5)
        #expect(cache.lookup(self.key("a"), now: now) == nil)
        #expect(cache.lookup(self.key("b"), now: now) == self.active(sub: "b"))
        #expect(cache.lookup(self.key("d"), now: now) == self.active(sub: "d"))
    }

    @Test func whenFullExpiredAnswersGoBeforeLiveOnes() {
        var cache = IntrospectionCache(capacity: 3, positiveTTL: 60, negativeTTL: 10)
        cache.store(self.active(sub: "a"), for: self.key("a"), now: self.t0)
        cache.store(.inactive, for: self.key("b"), now: self.t0)
        cache.store(self.active(sub: "c"), for: self.key("c"), now: self.t0)
        // At t0+20 "b" (negative, 10 s) is expired: it goes, and "a", the oldest, stays.
        cache.store(self.active(sub: "d"), for: self.key("d"), now: self.t0.addingTimeInterval(20))
        let now = self.t0.addingTimeInterval(21)
        #expect(cache.lookup(self.key("a"), now: now) == self.active(sub: "a"))
        #expect(cache.lookup(self.key("b"), now: now) == nil)
        #expect(cache.lookup(self.key("d"), now: now) == self.active(sub: "d"))
    }

    /// Many stores of a few keys keep the cache and its bookkeeping bounded, and eviction still takes the oldest.
    @Test func repeatedStoresStayBounded() {
        var cache = IntrospectionCache(capacity: 4, positiveTTL: 60, negativeTTL: 10)
        for round in 0..<1000 {
            let token = "k\(round % 5)"
            cache.store(self.active(sub: token), for: self.key(token), now: self.t0.addingTimeInterval(Double(round) / 100))
            #expect(cache.count <= 4)
        }
        // The last four stored are k1...k4 (round 999 is k4); k0 was stored before them and is gone.
        let now = self.t0.addingTimeInterval(10)
        #expect(cache.lookup(self.key("k0"), now: now) == nil)
        for token in ["k1", "k2", "k3", "k4"] {
            #expect(cache.lookup(self.key(token), now: now) == self.active(sub: token))
        }
    }

    @Test func theKeyIsTheTokensSHA256() {
        #expect(IntrospectionCache.key(for: "abc").map { String(format: "%02x", $0) }.joined()
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}

@Suite("Introspection answers")
struct IntrospectionAnswerTests {
    func parse(_ json: String) -> IntrospectionAnswer? {
        IntrospectionResponse.parse(Array(json.utf8))
    }

    @Test func anActiveAnswerIsRead() {
        let answer = self.parse(
            """
            {"active":true,"sub":"alice","username":"Alice","scope":"chat:read  chat:write","exp":1700000100,
             "iat":1700000000.5,"jti":"j-1","client_id":"app","iss":"https://idp","aud":["ws","other"],"extra":{"x":1}}
            """
        )
        let claims = IntrospectionClaims(
            subject: "alice", scopes: ["chat:read", "chat:write"], expiresAt: Date(timeIntervalSince1970: 1_700_000_100),
            issuedAt: Date(timeIntervalSince1970: 1_700_000_000.5), jti: "j-1", clientID: "app", issuer: "https://idp",
            audience: ["ws", "other"]
        )
        #expect(answer == .active(claims))
        #expect(self.parse(#"{"active":true}"#) == .active(IntrospectionClaims()))
        #expect(self.parse(#"{"active":true,"username":"bob","aud":"ws"}"#) == .active(IntrospectionClaims(subject: "bob", audience: ["ws"])))
    }

    @Test func onlyTrueIsActive() {
        for json in [#"{"active":false,"sub":"a"}"#, #"{"active":"true"}"#, #"{"active":1}"#, #"{"active":null}"#, #"{"active":{}}"#] {
            #expect(self.parse(json) == .inactive, "\(json)")
        }
    }

    @Test func bodiesThatAreNotAnswersAreMalformed() {
        let bodies = [
            "", "garbage", "[]", #"["active"]"#, #"{"sub":"alice"}"#, "{\"active\":true", "null",
            // Wrong types in an active answer: never ignored (a lost exp would make the token immortal).
            #"{"active":true,"exp":"1700000000"}"#, #"{"active":true,"sub":42}"#, #"{"active":true,"scope":["a"]}"#,
            #"{"active":true,"exp":-5}"#, #"{"active":true,"exp":1e300}"#, #"{"active":true,"aud":[1]}"#,
        ]
        for body in bodies {
            #expect(self.parse(body) == nil, "\(body)")
        }
        #expect(IntrospectionResponse.parse([0xff, 0xfe, 0x7b]) == nil)
    }

    @Test func theVerdictFollowsTheAnswer() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        func verdict(_ answer: IntrospectionAnswer, issuer: String? = nil, audience: String? = nil) -> AuthVerdict {
            answer.verdict(provider: "idp", issuer: issuer, audience: audience, now: now)
        }
        func rejection(_ verdict: AuthVerdict) -> TokenRejection? {
            if case .rejected(let reason) = verdict { return reason }
            return nil
        }
        #expect(rejection(verdict(.inactive)) == .inactive)
        var claims = IntrospectionClaims(
            subject: "alice", scopes: ["s"], expiresAt: now.addingTimeInterval(30), issuedAt: now.addingTimeInterval(-5), jti: "j",
            issuer: "https://idp", audience: ["ws"]
        )
        guard case .accepted(let identity) = verdict(.active(claims), issuer: "https://idp", audience: "ws") else {
            Issue.record("not accepted")
            return
        }
        #expect(identity == AuthIdentity(
            subject: "alice", scopes: ["s"], provider: "idp", expiresAt: now.addingTimeInterval(30), jti: "j", issuedAt: now.addingTimeInterval(-5)
        ))
        #expect(rejection(verdict(.active(claims), issuer: "https://other")) == .wrongIssuer)
        #expect(rejection(verdict(.active(claims), audience: "api")) == .wrongAudience)
        claims.expiresAt = now
        #expect(rejection(verdict(.active(claims))) == .expired)
        claims.expiresAt = nil
        claims.jti = String(repeating: "j", count: AuthIdentity.maxJTIBytes + 1)
        #expect(rejection(verdict(.active(claims))) == .oversizedJTI)
    }

    @Test func theRequestIsFormEncodedWithBasicCredentials() {
        #expect(IntrospectionRequest.formEncode("aZ09*-._ ~+/=:%é&") == "aZ09*-._+%7E%2B%2F%3D%3A%25%C3%A9%26")
        #expect(IntrospectionRequest.body(token: "a b&c=d") == "token=a+b%26c%3Dd&token_type_hint=access_token")
        // RFC 6749 §2.3.1: id and secret encoded before base64, so the colon in the id is not the separator.
        let header = IntrospectionRequest.basicAuthorization(clientID: "my app:1", clientSecret: "p@ss:word")
        let decoded = Data(base64Encoded: String(header.dropFirst("Basic ".count))).map { String(decoding: $0, as: UTF8.self) }
        #expect(header.hasPrefix("Basic "))
        #expect(decoded == "my+app%3A1:p%40ss%3Aword")
    }
}

@Suite("Introspection limiter")
struct IntrospectionLimiterTests {
    @Test func slotsAreCappedAndHandedOverInOrder() async throws {
        let limiter = IntrospectionLimiter(permits: 2, maxWaiting: 1)
        try await limiter.acquire()
        try await limiter.acquire()
        #expect(limiter.inUse == 2)
        let waiter = Task { try await limiter.acquire() }
        try await eventually("the third caller waits") { limiter.waiting == 1 }
        // The queue holds one: the next caller is refused at once.
        await #expect(throws: IntrospectionLimiter.Busy.self) { try await limiter.acquire() }
        limiter.release()
        try await waiter.value
        #expect(limiter.inUse == 2)
        #expect(limiter.waiting == 0)
        limiter.release()
        limiter.release()
        #expect(limiter.inUse == 0)
    }

    @Test func aCancelledWaiterLeavesTheQueue() async throws {
        let limiter = IntrospectionLimiter(permits: 1, maxWaiting: 4)
        try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        try await eventually("the caller waits") { limiter.waiting == 1 }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(limiter.waiting == 0)
        limiter.release()
        #expect(limiter.inUse == 0)
        try await limiter.acquire()
        #expect(limiter.inUse == 1)
        limiter.release()
    }
}
