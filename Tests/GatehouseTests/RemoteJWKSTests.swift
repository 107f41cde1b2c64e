import Foundation
import Testing
@testable import Gatehouse

/// Proxies whose JWT provider fetches its keys from a real local HTTPS identity provider (`Peers/idp_server.py`).
enum RemoteJWKSFixture {
    /// A proxy with provider `idp` (lines given, indented as list items of `auth:`) on `/remote` and an HS provider
    /// `local` on `/local`, admin on an ephemeral port.
    static func config(_ providerLines: [String]) throws -> String {
        let secretVariable = try SecurityFixture.make().secretVariable
        return """
            listeners:
              - name: plain
                bind: "127.0.0.1:0"
            backends:
              - name: demo
                builtin: echo
            auth:
            \(providerLines.map { "  " + $0 }.joined(separator: "\n"))
              - name: local
                type: jwt
                algorithms: [HS256]
                secret_env: \(secretVariable)
            routes:
              - name: remote
                path: "/remote"
                backend: demo
                origins: ["*"]
                auth: { providers: [idp] }
              - name: local
                path: "/local"
                backend: demo
                origins: ["*"]
                auth: { providers: [local] }
            admin: { bind: "127.0.0.1:0" }
            """
    }

    /// Provider `idp` fetching `idp`'s JWKS, trusting its CA, with `extra` keys.
    static func jwksURLProvider(_ idp: TestIdentityProvider, _ extra: [String] = []) -> [String] {
        ["- name: idp", "  type: jwt", "  algorithms: [RS256]", "  jwks_url: \(idp.jwksURL)", "  ca: \(idp.caPath)"] + extra.map { "  " + $0 }
    }

    /// One handshake with a bearer token: the status and the challenge.
    static func handshake(_ proxy: TestProxy, _ path: String, _ token: String) async throws -> (status: Int, challenge: String?) {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        do {
            try await client.sendUpgrade(path: path, extra: [("Authorization", "Bearer \(token)")])
            let head = try await client.readHead()
            await client.close()
            return (head.status, head.header("www-authenticate"))
        } catch {
            await client.close()
            throw error
        }
    }

    static func metrics(_ proxy: TestProxy) -> Exposition {
        Exposition(String(decoding: proxy.server.engine.metrics.exposition(), as: UTF8.self))
    }

    static func fetches(_ proxy: TestProxy, _ result: String) -> Double {
        self.metrics(proxy).value("gatehouse_auth_jwks_fetches_total", ["provider": "idp", "result": result])
    }

    /// `GET /auth` as a list of objects.
    static func auth(_ proxy: TestProxy) async throws -> (body: String, providers: [[String: Any]]) {
        let port = try #require(proxy.server.adminAddress?.port)
        let (status, body) = try await AdminClient.request(.GET, "/auth", address: BindAddress(host: "127.0.0.1", port: port), token: nil)
        guard status == 200, let list = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]] else {
            throw TestError("GET /auth: \(status) \(body)")
        }
        return (body, list)
    }

    static func challenge(_ rejection: TokenRejection) -> String {
        "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"\(rejection.rawValue)\""
    }

    static func token(kid: String) async throws -> String {
        try await TestKeys.shared.get().sign(.valid(), algorithm: "RS256", kid: kid)
    }

    static func hsToken() async throws -> String {
        try await TestKeys.shared.get().sign(.valid(), algorithm: "HS256")
    }
}

/// Remote JWKS: rotation through the kid-miss refetch, its rate limit, failures keeping the last keys, size and
/// time limits that hold no other handshake, reloads keeping the cache, `GET /auth`, and the URL rules.
@Suite("Remote JWKS")
struct RemoteJWKSTests {
    typealias Fixture = RemoteJWKSFixture

    func withProxy(
        serving kids: [String] = ["rsa"], extra: [String] = [], _ body: (TestProxy, TestIdentityProvider) async throws -> Void
    ) async throws {
        let keys = try TestKeys.shared.get()
        try await TestIdentityProvider.with(jwks: try TestIdentityProvider.jwks(keys, kids: kids)) { idp in
            let yaml = try Fixture.config(Fixture.jwksURLProvider(idp, extra))
            try await TestProxy.with(yaml) { proxy in try await body(proxy, idp) }
        }
    }

    @Test func aRotatedKeyIsAcceptedAtOnceThroughTheKidMissRefetch() async throws {
        try await self.withProxy { proxy, idp in
            _ = try await proxy.logs.waitForLine(containing: "key set loaded")
            #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
            // The provider rotates: the new key signs at once, long before the cached set (max-age 3600) expires.
            try await idp.control(["jwks": try TestIdentityProvider.jwks(try TestKeys.shared.get(), kids: ["rsa2"])])
            let rotated = try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa2"))
            #expect(rotated.status == 101, "\(rotated.challenge ?? "")")
            #expect(try await idp.counts().jwks == 2, "the initial fetch and one refetch")
            #expect(Fixture.metrics(proxy).value("gatehouse_auth_jwks_kid_miss_refetches_total", ["provider": "idp"]) == 1)
            // The retired key is gone with the refetched set.
            let retired = try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa"))
            #expect(retired.status == 401)
            #expect(retired.challenge == Fixture.challenge(.unknownKeyID))
        }
    }

    @Test func aThousandUnknownKidsCauseOneFetchPerRefetchMin() async throws {
        try await self.withProxy { proxy, idp in
            _ = try await proxy.logs.waitForLine(containing: "key set loaded")
            let before = try await idp.counts().jwks
            let started = ContinuousClock.now
            let statuses = try await withThrowingTaskGroup(of: [(Int, String?)].self) { group in
                // 1,000 handshakes, 50 at a time, each with a random kid: the first misses share one refetch.
                for _ in 0..<50 {
                    group.addTask {
                        var results: [(Int, String?)] = []
                        for _ in 0..<20 {
                            let token = try await Fixture.token(kid: "random-\(UUID().uuidString)")
                            let answer = try await Fixture.handshake(proxy, "/remote", token)
                            results.append((answer.status, answer.challenge))
                        }
                        return results
                    }
                }
                var all: [(Int, String?)] = []
                for try await part in group { all += part }
                return all
            }
            let elapsed = ContinuousClock.now - started
            #expect(statuses.count == 1000)
            #expect(statuses.allSatisfy { $0.0 == 401 && $0.1 == Fixture.challenge(.unknownKeyID) })
            // jwks_refetch_min is 30 s: one refetch for the whole burst (which took less than that).
            #expect(elapsed < .seconds(30))
            #expect(try await idp.counts().jwks - before == 1)
            #expect(Fixture.metrics(proxy).value("gatehouse_auth_jwks_kid_miss_refetches_total", ["provider": "idp"]) == 1)
            #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
        }
    }

    @Test func theLastKeysKeepVerifyingWhileTheProviderIsDown() async throws {
        try await self.withProxy(extra: ["jwks_refresh_min: 1s", "jwks_refresh_max: 1s"]) { proxy, idp in
            _ = try await proxy.logs.waitForLine(containing: "key set loaded")
            try await idp.control(["mode": "down"])
            // The background refresh (every 0.9 s here) fails: the keys held stay.
            _ = try await proxy.logs.waitForLine(containing: "key set fetch failed; keeping the last good keys")
            #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
            #expect(Fixture.fetches(proxy, "error") >= 1)
            #expect(Fixture.metrics(proxy).value("gatehouse_auth_jwks_keys", ["provider": "idp"]) == 1)
            #expect(proxy.server.identity.notReadyReason == nil, "keys are held: ready")
            let idpState = try #require(try await Fixture.auth(proxy).providers.first { $0["name"] as? String == "idp" })
            #expect(idpState["key_ids"] as? [String] == ["rsa"])
            #expect((idpState["last_error"] as? String)?.contains("503") == true)
            // An unknown kid while down: refused, the held keys unchanged.
            let miss = try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa2"))
            #expect(miss.status == 401)
            #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
        }
    }

    @Test func anOversizeAnswerIsRefusedAndTheProxyServesMeanwhile() async throws {
        let keys = try TestKeys.shared.get()
        try await TestIdentityProvider.with(jwks: try TestIdentityProvider.jwks(keys, kids: ["rsa"])) { idp in
            // Chunked, so the limit is met while reading rather than from Content-Length.
            try await idp.control(["mode": "oversize_chunked", "oversize_bytes": 512 * 1024])
            let yaml = try Fixture.config(Fixture.jwksURLProvider(idp, ["jwks_max_bytes: 4KiB"]))
            try await TestProxy.with(yaml) { proxy in
                let failure = try await proxy.logs.waitForLine(containing: "key set fetch failed; no keys yet")
                #expect(failure.contains("larger than 4096 bytes"))
                #expect(Fixture.fetches(proxy, "too_large") >= 1)
                let refused = try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa"))
                #expect(refused.status == 401)
                #expect(refused.challenge == Fixture.challenge(.keysNotAvailable))
                #expect(proxy.server.identity.notReadyReason?.contains("auth provider 'idp'") == true)
                #expect(try await Fixture.handshake(proxy, "/local", try await Fixture.hsToken()).status == 101)
                // The provider recovers: the background retry loads the keys.
                try await idp.control(["mode": "ok"])
                _ = try await proxy.logs.waitForLine(containing: "key set loaded")
                #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
                #expect(proxy.server.identity.notReadyReason == nil)
                // Oversize with Content-Length on a kid-miss refetch: refused at once, the keys held stay.
                try await idp.control(["mode": "oversize"])
                #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa2")).status == 401)
                #expect(Fixture.fetches(proxy, "too_large") >= 2)
                #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
            }
        }
    }

    @Test func aSlowAnswerTimesOutWithoutHoldingOtherHandshakes() async throws {
        try await self.withProxy(extra: ["jwks_timeout: 2s"]) { proxy, idp in
            _ = try await proxy.logs.waitForLine(containing: "key set loaded")
            // Headers at once, then the body a byte every 0.2 s: only a deadline over the whole fetch ends it.
            try await idp.control(["mode": "slow"])
            let token = try await Fixture.token(kid: "rotated-\(UUID().uuidString)")
            let clock = ContinuousClock()
            let missStarted = clock.now
            let miss = Task { try await Fixture.handshake(proxy, "/remote", token) }
            // Wait until the refetch is in flight, then time handshakes that do not need it.
            _ = try await proxy.logs.waitForLine(containing: "unknown kid: refetching the key set")
            for _ in 0..<5 {
                let started = clock.now
                #expect(try await Fixture.handshake(proxy, "/local", try await Fixture.hsToken()).status == 101)
                #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
                #expect(clock.now - started < .milliseconds(1000), "a handshake waited for the slow fetch")
            }
            let answer = try await miss.value
            let waited = clock.now - missStarted
            #expect(answer.status == 401)
            #expect(answer.challenge == Fixture.challenge(.unknownKeyID))
            #expect(waited < .seconds(4), "the kid-miss handshake waited \(waited), beyond jwks_timeout")
            #expect(Fixture.fetches(proxy, "timeout") == 1)
            let idpState = try #require(try await Fixture.auth(proxy).providers.first { $0["name"] as? String == "idp" })
            #expect((idpState["last_error"] as? String)?.contains("jwks_timeout") == true)
            #expect(idpState["key_ids"] as? [String] == ["rsa"])
        }
    }

    @Test func getAuthShowsKeyIDsAndNoSecret() async throws {
        try await self.withProxy(serving: ["rsa", "p256"]) { proxy, idp in
            _ = try await proxy.logs.waitForLine(containing: "key set loaded")
            let token = try await Fixture.token(kid: "rsa")
            #expect(try await Fixture.handshake(proxy, "/remote", token).status == 101)
            let hs = try await Fixture.hsToken()
            #expect(try await Fixture.handshake(proxy, "/local", hs).status == 101)
            let (body, providers) = try await Fixture.auth(proxy)
            #expect(providers.map { $0["name"] as? String } == ["idp", "local"])
            let remote = try #require(providers.first)
            #expect(remote["type"] as? String == "jwt")
            #expect(remote["key_ids"] as? [String] == ["p256", "rsa"])
            #expect(remote["source"] as? String == idp.jwksURL)
            #expect(remote["fetched_at"] is String)
            #expect(remote["next_refresh"] is String)
            #expect(remote["last_error"] is NSNull)
            let local = try #require(providers.last)
            #expect(local["algorithms"] as? [String] == ["HS256"])
            #expect(!body.contains(TestKeys.secret))
            #expect(!body.contains(token) && !body.contains(hs))
            #expect(!body.contains("BEGIN"), "no key material")
        }
    }

    @Test func reloadKeepsTheKeysUnlessTheRemoteSettingsChange() async throws {
        let keys = try TestKeys.shared.get()
        try await TestIdentityProvider.with(jwks: try TestIdentityProvider.jwks(keys, kids: ["rsa"])) { idp in
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-jwks-\(UUID().uuidString).yaml").path
            let yaml = try Fixture.config(Fixture.jwksURLProvider(idp))
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            try await TestProxy.with(yaml, file: path) { proxy in
                _ = try await proxy.logs.waitForLine(containing: "key set loaded")
                let first = try #require(proxy.server.identity.keySet(named: "idp"))
                // Unchanged: same key set, no fetch.
                try yaml.replacingOccurrences(of: "path: \"/local\"", with: "path: \"/local2\"").write(toFile: path, atomically: true, encoding: .utf8)
                guard case .success = await proxy.server.reload() else { throw TestError("reload failed") }
                #expect(proxy.server.identity.keySet(named: "idp") === first)
                #expect(try await idp.counts().jwks == 1)
                #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
                // Changed settings: a new key set, fetched anew; the old one stops.
                try Fixture.config(Fixture.jwksURLProvider(idp, ["jwks_refetch_min: 10s"])).write(toFile: path, atomically: true, encoding: .utf8)
                guard case .success = await proxy.server.reload() else { throw TestError("reload failed") }
                let second = try #require(proxy.server.identity.keySet(named: "idp"))
                #expect(second !== first)
                #expect(first.snapshot.nextRefresh == nil, "the replaced key set stopped")
                // The first token waits for the new set's first fetch.
                #expect(try await Fixture.handshake(proxy, "/remote", try await Fixture.token(kid: "rsa")).status == 101)
                #expect(try await idp.counts().jwks == 2)
                // The provider removed: its key set stops and GET /auth no longer lists it.
                let withoutRemote = try Fixture.config(["- name: idp", "  type: jwt", "  algorithms: [HS256]", "  secret_env: \(try SecurityFixture.make().secretVariable)"])
                try withoutRemote.write(toFile: path, atomically: true, encoding: .utf8)
                guard case .success = await proxy.server.reload() else { throw TestError("reload failed") }
                #expect(proxy.server.identity.keySet(named: "idp") == nil)
                #expect(second.snapshot.nextRefresh == nil)
                #expect(try await Fixture.auth(proxy).providers.first?["key_ids"] == nil)
            }
        }
    }

    @Test func httpToANonLoopbackHostIsRefusedAtConfigLoad() throws {
        for (key, value) in [("jwks_url", "http://idp.example/jwks.json"), ("oidc_issuer", "http://10.0.0.5/realms/x")] {
            let yaml = try Fixture.config(["- name: idp", "  type: jwt", "  algorithms: [RS256]", "  \(key): \(value)"])
            do {
                _ = try ProxyConfig.parse(yaml: yaml, file: "t.yaml")
                Issue.record("\(key) \(value) was accepted")
            } catch {
                #expect(error.message.contains("\(key) uses http:// to '"), "\(error)")
                #expect(error.message.contains("not a loopback host"), "\(error)")
                #expect(error.line == 11, "\(error)")
            }
        }
        for value in ["http://127.0.0.1:8080/jwks.json", "http://localhost/jwks.json", "http://[::1]:9000/jwks.json"] {
            let yaml = try Fixture.config(["- name: idp", "  type: jwt", "  algorithms: [RS256]", "  jwks_url: \"\(value)\""])
            #expect(throws: Never.self, "\(value)") { try ProxyConfig.parse(yaml: yaml, file: "t.yaml") }
        }
    }

    @Test func exactlyOneSourceOfPublicKeys() throws {
        let cases: [([String], String)] = [
            (["jwks_file: keys.json", "jwks_url: https://idp.example/jwks.json"], "jwks_file and jwks_url are both set"),
            (["jwks_url: https://idp.example/jwks.json", "oidc_issuer: https://idp.example"], "jwks_url and oidc_issuer are both set"),
            ([], "need one of 'jwks_file', 'jwks_url' or 'oidc_issuer'"),
            (["jwks_file: keys.json", "jwks_timeout: 2s"], "jwks_timeout is set but neither jwks_url nor oidc_issuer is"),
            (["jwks_url: https://idp.example/jwks.json", "jwks_refresh_min: 2h"], "is greater than jwks_refresh_max"),
            (["jwks_url: https://u:p@idp.example/jwks.json"], "must not carry credentials"),
            (["jwks_url: ftp://idp.example/jwks.json"], "must use https://"),
        ]
        for (extra, message) in cases {
            let yaml = try Fixture.config(["- name: idp", "  type: jwt", "  algorithms: [RS256]"] + extra.map { "  " + $0 })
            do {
                _ = try ProxyConfig.parse(yaml: yaml, file: "t.yaml")
                Issue.record("\(extra) was accepted")
            } catch {
                #expect(error.message.contains(message), "\(error)")
            }
        }
    }
}
