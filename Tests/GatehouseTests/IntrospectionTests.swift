import Foundation
import Logging
import NIOPosix
import Testing
@testable import Gatehouse

/// Opaque tokens checked at an RFC 7662 endpoint: a real local HTTPS server (`Peers/introspection_server.py`, with a
/// CA made per test), the proxy in-process, WebSocket handshakes through it.
@Suite("Introspection")
struct IntrospectionTests {
    /// `ca` defaults to the endpoint's CA (none without an endpoint, or with `trustCA: false`).
    static func config(
        backendPort: Int, idp: TestIntrospectionServer?, endpoint: String? = nil, ca: String? = nil, trustCA: Bool = true,
        timeout: String = "1s", extra: String = ""
    ) -> String {
        let variables = TestIntrospectionServer.variables
        let caLine = (ca ?? (trustCA ? idp?.caPath : nil)).map { "    ca: \"\($0)\"\n" } ?? ""
        return """
            listeners:
              - name: plain
                bind: "127.0.0.1:0"
            backends:
              - name: app
                servers: ["127.0.0.1:\(backendPort)"]
            auth:
              - name: idp
                type: introspection
                endpoint: "\(endpoint ?? idp?.endpoint ?? "https://127.0.0.1:1/introspect")"
                client_id_env: \(variables.id)
                client_secret_env: \(variables.secret)
            \(caLine)    timeout: \(timeout)
            \(extra.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n"))
            routes:
              - name: t
                path: "/t"
                backend: app
                origins: ["*"]
                auth: { providers: [idp] }
              - name: scoped
                path: "/scoped"
                backend: app
                origins: ["*"]
                auth: { providers: [idp], scopes: ["chat:write"] }
            """
    }

    /// A started endpoint, backend and proxy (`extra`: more keys of the provider, one per line).
    func withSetup(
        timeout: String = "1s", extra: String = "", tokens: [String: [String: Any]] = [:],
        _ body: (TestProxy, RecordingBackend, TestIntrospectionServer) async throws -> Void
    ) async throws {
        try await TestIntrospectionServer.with { idp in
            try idp.setTokens(tokens)
            try await RecordingBackend.with { backend in
                try await TestProxy.with(Self.config(backendPort: backend.port, idp: idp, timeout: timeout, extra: extra)) { proxy in
                    try await body(proxy, backend, idp)
                }
            }
        }
    }

    /// Sends an upgrade with `token` and returns the answer head (and body when it is not a 101), and the client.
    func upgrade(_ proxy: TestProxy, path: String = "/t", token: String) async throws -> (TestResponseHead, String, TestClient) {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        try await client.sendUpgrade(path: path, extra: [("Authorization", "Bearer \(token)")])
        let head = try await client.readHead()
        let length = Int(head.header("content-length") ?? "0") ?? 0
        let body = head.status == 101 || length == 0 ? "" : try await client.readBody(length: length)
        return (head, body, client)
    }

    func metrics(_ proxy: TestProxy) -> Exposition {
        Exposition(String(decoding: proxy.server.engine.metrics.exposition(), as: UTF8.self))
    }

    static func answer(sub: String, scope: String = "chat:read chat:write", expiresIn: TimeInterval = 3600) -> [String: Any] {
        ["active": true, "sub": sub, "scope": scope, "exp": Int(Date().timeIntervalSince1970 + expiresIn), "jti": "jti-\(sub)"]
    }

    // MARK: Answers

    @Test func anActiveTokenIsAcceptedWithItsIdentity() async throws {
        try await self.withSetup(tokens: ["opaque-alice-1": Self.answer(sub: "alice")]) { proxy, backend, idp in
            let (head, _, client) = try await self.upgrade(proxy, token: "opaque-alice-1")
            #expect(head.status == 101)
            await client.close()
            let request = try #require(backend.received.last)
            #expect(request.header("x-auth-subject") == "alice")
            #expect(request.header("x-auth-scopes") == "chat:read chat:write")
            #expect(request.header("x-auth-provider") == "idp")
            #expect(request.header("authorization") == nil)
            // The request as RFC 7662 says: form body with the hint, Basic credentials the server accepted.
            let line = try #require(try await idp.requests(token: "opaque-alice-1", atLeast: 1).first)
            #expect(line.contains("auth=ok"))
            #expect(line.contains("type=application/x-www-form-urlencoded"))
            #expect(line.contains("hint=access_token"))
            let metrics = self.metrics(proxy)
            #expect(metrics.value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "active"]) == 1)
            #expect(metrics.value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "error"]) == 0)
            // Neither the token nor the client secret is logged.
            _ = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(!proxy.logs.all.contains { $0.contains("opaque-alice-1") || $0.contains(TestIntrospectionServer.clientSecret) })
        }
    }

    @Test func anInactiveTokenIs401() async throws {
        try await self.withSetup(tokens: ["revoked-1": ["active": false, "sub": "mallory"]]) { proxy, backend, idp in
            for token in ["revoked-1", "never-issued"] {
                let (head, _, client) = try await self.upgrade(proxy, token: token)
                await client.close()
                #expect(head.status == 401, "\(token)")
                #expect(head.header("www-authenticate")?.contains("error_description=\"token inactive\"") == true, "\(token)")
            }
            #expect(backend.received.isEmpty)
            #expect(try await idp.requests(atLeast: 2).count == 2)
            #expect(self.metrics(proxy).value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "inactive"]) == 2)
        }
    }

    @Test func routeScopesApplyToIntrospectedScopes() async throws {
        let tokens = ["reader": Self.answer(sub: "r", scope: "chat:read"), "writer": Self.answer(sub: "w", scope: "chat:write")]
        try await self.withSetup(tokens: tokens) { proxy, _, _ in
            let (refused, _, first) = try await self.upgrade(proxy, path: "/scoped", token: "reader")
            await first.close()
            #expect(refused.status == 403)
            #expect(refused.header("www-authenticate")?.contains("insufficient_scope") == true)
            let (accepted, _, second) = try await self.upgrade(proxy, path: "/scoped", token: "writer")
            await second.close()
            #expect(accepted.status == 101)
        }
    }

    /// An active answer past its `exp` is refused like an expired JWT.
    @Test func anActiveAnswerPastItsExpIsRefused() async throws {
        try await self.withSetup(tokens: ["stale": Self.answer(sub: "s", expiresIn: -10)]) { proxy, _, _ in
            let (head, _, client) = try await self.upgrade(proxy, token: "stale")
            await client.close()
            #expect(head.status == 401)
            #expect(head.header("www-authenticate")?.contains("token expired") == true)
        }
    }

    // MARK: Cache

    @Test func answersAreCachedPositiveAndNegative() async throws {
        try await self.withSetup(tokens: ["cached-1": Self.answer(sub: "c")]) { proxy, _, idp in
            for _ in 0..<3 {
                let (head, _, client) = try await self.upgrade(proxy, token: "cached-1")
                await client.close()
                #expect(head.status == 101)
            }
            for _ in 0..<3 {
                let (head, _, client) = try await self.upgrade(proxy, token: "unknown-1")
                await client.close()
                #expect(head.status == 401)
            }
            #expect(try await idp.requests(token: "cached-1", atLeast: 1).count == 1)
            #expect(try await idp.requests(token: "unknown-1", atLeast: 1).count == 1)
            let metrics = self.metrics(proxy)
            #expect(metrics.value("gatehouse_auth_introspection_cache_hits_total", ["provider": "idp"]) == 4)
            #expect(metrics.value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "active"]) == 1)
            #expect(metrics.value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "inactive"]) == 1)
        }
    }

    /// With both TTLs at zero nothing is cached: every handshake asks, and a token turned inactive is refused at once.
    @Test func zeroTTLsAskEveryTime() async throws {
        try await self.withSetup(extra: "cache_ttl: 0\nnegative_cache_ttl: 0", tokens: ["live": Self.answer(sub: "l")]) { proxy, _, idp in
            let (first, _, a) = try await self.upgrade(proxy, token: "live")
            await a.close()
            #expect(first.status == 101)
            try idp.setTokens(["live": ["active": false]])
            let (second, _, b) = try await self.upgrade(proxy, token: "live")
            await b.close()
            #expect(second.status == 401)
            let (third, _, c) = try await self.upgrade(proxy, token: "live")
            await c.close()
            #expect(third.status == 401)
            #expect(try await idp.requests(token: "live", atLeast: 3).count == 3)
        }
    }

    /// Concurrent handshakes with one token while the endpoint is slow share a single request.
    @Test func concurrentMissesShareOneRequest() async throws {
        try await self.withSetup(timeout: "5s", tokens: ["shared": Self.answer(sub: "s")]) { proxy, _, idp in
            try idp.setBehaviour(["delay": 0.5])
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let (head, _, client) = try await self.upgrade(proxy, token: "shared")
                        await client.close()
                        return head.status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 101, count: 8))
            #expect(try await idp.requests(token: "shared", atLeast: 1).count == 1)
        }
    }

    /// `max_concurrent` bounds the requests the endpoint sees at once; the others wait for a slot and succeed.
    @Test func requestsTowardTheEndpointAreCapped() async throws {
        let tokens = Dictionary(uniqueKeysWithValues: (0..<6).map { ("tok-\($0)", Self.answer(sub: "u\($0)")) })
        try await self.withSetup(timeout: "10s", extra: "max_concurrent: 2", tokens: tokens) { proxy, _, idp in
            try idp.setBehaviour(["delay": 0.4])
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<6 {
                    group.addTask {
                        let (head, _, client) = try await self.upgrade(proxy, token: "tok-\(index)")
                        await client.close()
                        return head.status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 101, count: 6))
            #expect(try await idp.requests(atLeast: 6).count == 6)
            #expect(idp.maxInFlight == 2)
        }
    }

    // MARK: Endpoint failures

    @Test func anEndpointDownIs503OrByChoice401() async throws {
        try await RecordingBackend.with { backend in
            // Port 1: nothing listens there.
            let down = Self.config(backendPort: backend.port, idp: nil)
            try await TestProxy.with(down) { proxy in
                let started = ContinuousClock.now
                let (head, body, client) = try await self.upgrade(proxy, token: "any-token")
                await client.close()
                #expect(head.status == 503)
                #expect(head.header("retry-after") != nil)
                #expect(body.contains("identity provider unavailable: introspection endpoint"))
                #expect(ContinuousClock.now - started < .seconds(3))
                #expect(self.metrics(proxy).value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "error"]) == 1)
                // Errors are not cached: the next handshake asks again.
                let (again, _, second) = try await self.upgrade(proxy, token: "any-token")
                await second.close()
                #expect(again.status == 503)
                #expect(self.metrics(proxy).value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "error"]) == 2)
            }
            let refuse = Self.config(backendPort: backend.port, idp: nil, extra: "on_error: unauthorized")
            try await TestProxy.with(refuse) { proxy in
                let (head, _, client) = try await self.upgrade(proxy, token: "any-token")
                await client.close()
                #expect(head.status == 401)
                #expect(head.header("www-authenticate")?.contains("token could not be introspected") == true)
            }
            #expect(backend.received.isEmpty)
        }
    }

    /// Answers that cannot be used (error status, garbage, no `active`, too large, too slow, body trickling past the
    /// timeout) are `on_error`, never an acceptance, and none is cached.
    @Test func unusableAnswersAreOnError() async throws {
        let cases: [(String, [String: Any])] = [
            ("status 500", ["status": 500]),
            ("garbage", ["body": "<html>oops</html>"]),
            ("no active", ["body": #"{"sub":"alice","scope":"chat:write"}"#]),
            ("oversized", ["pad": 4000]),
            ("slow head", ["delay": 5]),
            ("trickling body", ["trickle": 0.1]),
        ]
        try await self.withSetup(extra: "max_response_bytes: 1KiB", tokens: ["good": Self.answer(sub: "g")]) { proxy, backend, idp in
            for (name, behaviour) in cases {
                try idp.setBehaviour(behaviour)
                let started = ContinuousClock.now
                let (head, _, client) = try await self.upgrade(proxy, token: "good")
                await client.close()
                #expect(head.status == 503, "\(name)")
                // The 1 s timeout covers the whole request, body included (the trickle alone takes about 9 s).
                #expect(ContinuousClock.now - started < .seconds(4), "\(name)")
            }
            #expect(backend.received.isEmpty)
            #expect(self.metrics(proxy).value("gatehouse_auth_introspection_requests_total", ["provider": "idp", "result": "error"]) == 6)
            try idp.setBehaviour([:])
            let (head, _, client) = try await self.upgrade(proxy, token: "good")
            await client.close()
            #expect(head.status == 101)
        }
    }

    /// A wrong client secret: the endpoint answers 401 and the handshake gets `on_error`, not the endpoint's 401.
    @Test func aRefusedClientSecretIsOnError() async throws {
        try await TestIntrospectionServer.with { idp in
            try idp.setTokens(["good": Self.answer(sub: "g")])
            try await RecordingBackend.with { backend in
                let yaml = Self.config(backendPort: backend.port, idp: idp)
                    .replacingOccurrences(of: TestIntrospectionServer.variables.secret, with: TestIntrospectionServer.variables.wrongSecret)
                try await TestProxy.with(yaml) { proxy in
                    let (head, body, client) = try await self.upgrade(proxy, token: "good")
                    await client.close()
                    #expect(head.status == 503)
                    #expect(body.contains("refused the client credentials"))
                    #expect(try await idp.requests(token: "good", atLeast: 1).first?.contains("auth=bad") == true)
                }
            }
        }
    }

    /// The endpoint's certificate must chain to `ca`: without it (system roots) the handshake gets `on_error`.
    @Test func theEndpointCertificateIsVerified() async throws {
        try await TestIntrospectionServer.with { idp in
            try idp.setTokens(["good": Self.answer(sub: "g")])
            try await RecordingBackend.with { backend in
                let yaml = Self.config(backendPort: backend.port, idp: idp, trustCA: false)
                #expect(!yaml.contains("ca:"))
                try await TestProxy.with(yaml) { proxy in
                    let (head, _, client) = try await self.upgrade(proxy, token: "good")
                    await client.close()
                    #expect(head.status == 503)
                }
            }
            #expect(idp.requests().isEmpty)
        }
    }

    // MARK: Live expiry

    /// `exp` of the answer closes the open connection when it passes, as for a JWT.
    @Test func theAnswersExpClosesTheConnection() async throws {
        // Long enough for the handshake to finish first on a loaded machine, as in the JWT live-expiry test.
        let exp = Date().timeIntervalSince1970 + 8
        let tokens: [String: [String: Any]] = ["short": ["active": true, "sub": "short-lived", "exp": exp]]
        try await self.withSetup(tokens: tokens) { proxy, _, _ in
            let (head, _, client) = try await self.upgrade(proxy, token: "short")
            #expect(head.status == 101)
            let close = try await client.readFrame(timeout: .seconds(15))
            let closedAt = Date().timeIntervalSince1970
            #expect(close.closeCode == 1008)
            #expect(close.closeReason == "token expired")
            #expect(closedAt >= exp - 0.05)
            #expect(closedAt < exp + 3)
            await client.close()
        }
    }

    // MARK: Configuration

    func configError(_ yaml: String, environment: [String: String] = ProcessInfo.processInfo.environment) async -> String? {
        do {
            let config = try ProxyConfig.parse(yaml: yaml, file: "/tmp/introspection.yaml")
            var builder = ServingStateBuilder(
                metrics: ProxyMetrics(), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, environment: environment
            )
            _ = try await builder.build(config, generation: 0, echo: .placeholder)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func configurationErrorsArePrecise() async throws {
        let ca = try TestCertificateAuthority.make()
        let base = Self.config(backendPort: 9, idp: nil, endpoint: "https://idp.example/introspect", ca: ca.pemPath)
        // Valid, and checked without fetching anything (no identity runtime, as in `gatehouse check`).
        #expect(await self.configError(base) == nil)
        let variables = TestIntrospectionServer.variables
        let cases: [(String, String)] = [
            (base.replacingOccurrences(of: "https://idp.example", with: "http://idp.example"),
             "endpoint uses http:// to 'idp.example', which is not a loopback host"),
            (base.replacingOccurrences(of: "https://idp.example/introspect", with: "idp.example/introspect"), "endpoint must be an absolute URL"),
            (base.replacingOccurrences(of: "https://idp.example", with: "ftp://idp.example"), "endpoint must use https://"),
            (base.replacingOccurrences(of: "https://idp.example", with: "https://u:p@idp.example"), "endpoint must not hold credentials"),
            (base.replacingOccurrences(of: "timeout: 1s", with: "timeout: 1s\n    on_error: allow"), "on_error must be 'unauthorized' (401) or 'unavailable' (503)"),
            (base.replacingOccurrences(of: "timeout: 1s", with: "timeout: 1s\n    cache_tll: 5s"), "unknown key 'cache_tll' in an auth provider (did you mean 'cache_ttl'?)"),
            (base.replacingOccurrences(of: "timeout: 1s", with: "timeout: 0"), "timeout must be greater than zero"),
            (base.replacingOccurrences(of: "timeout: 1s", with: "max_concurrent: 0"), "max_concurrent must be between 1 and 1024"),
            (base.replacingOccurrences(of: "timeout: 1s", with: "max_response_bytes: 10"), "max_response_bytes must be between"),
            (base.replacingOccurrences(of: "    client_id_env: \(variables.id)\n", with: ""), "missing the required key 'client_id_env'"),
            (base.replacingOccurrences(of: variables.secret, with: "GATEHOUSE_TEST_UNSET_INTROSPECTION_SECRET"),
             "environment variable GATEHOUSE_TEST_UNSET_INTROSPECTION_SECRET (client_secret_env of auth provider 'idp') is not set"),
            (base.replacingOccurrences(of: ca.pemPath, with: "/nonexistent/ca.pem"), "cannot read CA file /nonexistent/ca.pem (ca of auth provider 'idp')"),
        ]
        for (yaml, expected) in cases {
            let error = await self.configError(yaml)
            #expect(error?.contains(expected) == true, "expected '\(expected)', got \(error ?? "no error")")
            #expect(error?.hasPrefix("/tmp/introspection.yaml:") == true, "\(error ?? "")")
        }
        // Loopback hosts may use http://.
        for host in ["127.0.0.1:8080", "localhost", "[::1]:9000", "127.1.2.3"] {
            let yaml = base.replacingOccurrences(of: "https://idp.example", with: "http://\(host)")
            #expect(await self.configError(yaml) == nil, "\(host)")
        }
    }

    @Test func defaultsAreTheDocumentedOnes() throws {
        let config = try ProxyConfig.parse(yaml: Self.config(backendPort: 9, idp: nil), file: "d.yaml")
        guard case .introspection(let settings) = try #require(config.auth.first).kind else {
            Issue.record("not an introspection provider")
            return
        }
        #expect(settings.cacheTTL == .seconds(60))
        #expect(settings.negativeCacheTTL == .seconds(10))
        #expect(settings.cacheSize == 10_000)
        #expect(settings.maxConcurrent == 32)
        #expect(settings.maxResponseBytes == 65536)
        #expect(settings.onError == .unavailable)
        #expect(settings.ca == nil)
        #expect(settings.issuer == nil && settings.audience == nil)
    }
}

/// The provider without the proxy: its `GET /auth` state, on a client of its own (so these run even before the
/// server shares its identity runtime with providers).
@Suite("Introspection provider")
struct IntrospectionProviderTests {
    @Test func stateShowsTheEndpointCacheAndLastErrorButNoSecret() async throws {
        try await TestIntrospectionServer.with { idp in
            try idp.setTokens(["good": IntrospectionTests.answer(sub: "g")])
            let yaml = IntrospectionTests.config(backendPort: 9, idp: idp)
            let config = try ProxyConfig.parse(yaml: yaml, file: "p.yaml")
            guard case .introspection(let settings) = try #require(config.auth.first).kind else {
                Issue.record("not an introspection provider")
                return
            }
            let runtime = IdentityRuntime(eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
            do {
                let provider = try IntrospectionProvider.make(
                    settings, name: "idp", environment: ProcessInfo.processInfo.environment, identity: runtime, metrics: ProxyMetrics()
                )
                guard case .accepted(let identity) = await provider.verify("good", now: Date()) else {
                    Issue.record("not accepted")
                    await runtime.shutdown()
                    return
                }
                #expect(identity.subject == "g")
                #expect(identity.jti == "jti-g")
                try idp.setBehaviour(["status": 502])
                guard case .unavailable(let reason) = await provider.verify("other", now: Date()) else {
                    Issue.record("not unavailable")
                    await runtime.shutdown()
                    return
                }
                #expect(reason == "introspection endpoint answered an error status")
                let state = await provider.state()
                #expect(state.type == "introspection")
                #expect(state.details["endpoint"] as? String == idp.endpoint)
                #expect(state.details["cache_entries"] as? Int == 1)
                #expect(state.details["requests_in_flight"] as? Int == 0)
                #expect(state.details["last_error"] as? String == "introspection endpoint answered an error status")
                let text = "\(state.details)"
                #expect(!text.contains(TestIntrospectionServer.clientSecret))
                #expect(!text.contains("good"))
            } catch {
                Issue.record("\(error)")
            }
            await runtime.shutdown()
        }
    }
}
