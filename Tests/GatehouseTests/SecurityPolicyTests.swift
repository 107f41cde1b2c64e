import Crypto
import Foundation
import Testing
@testable import Gatehouse

/// A temporary directory with a JWKS, a static tokens file and the HMAC secret in an environment variable.
struct SecurityFixture {
    let keys: TestKeys
    let directory: URL
    let secretVariable: String
    static let botToken = "bot-token-0123456789abcdef"

    static func make() throws -> SecurityFixture {
        let keys = try TestKeys.shared.get()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-sec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try keys.jwks().write(to: directory.appendingPathComponent("jwks.json"), atomically: true, encoding: .utf8)
        let hash = SHA256.hash(data: Array(botToken.utf8)).map { String(format: "%02x", $0) }.joined()
        try "# bots\nbuildbot \(hash)\n".write(to: directory.appendingPathComponent("tokens.txt"), atomically: true, encoding: .utf8)
        return SecurityFixture(keys: keys, directory: directory, secretVariable: Self.sharedSecretVariable)
    }

    /// Set once for the whole run, not per fixture: `setenv` while other tests read the environment (every proxy
    /// start does) is a data race in glibc, and the value is always the same.
    private static let sharedSecretVariable: String = {
        let variable = "GATEHOUSE_TEST_SECRET_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        setenv(variable, TestKeys.secret, 1)
        return variable
    }()

    func config(backendPort: Int, route: String = "", limits: String = "") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: app
            servers: ["127.0.0.1:\(backendPort)"]
        auth:
          - name: main
            type: jwt
            algorithms: [HS256, HS384, HS512, RS256, RS384, RS512, PS256, ES256, ES384, EdDSA]
            secret_env: \(self.secretVariable)
            jwks_file: jwks.json
            leeway: 1s
          - name: strict
            type: jwt
            algorithms: [RS256]
            jwks_file: jwks.json
            issuer: "https://auth.example"
            audience: "ws-api"
            leeway: 0
          - name: bots
            type: static
            tokens_file: tokens.txt
        routes:
          - name: open
            path: "/open"
            backend: app
            origins: ["https://app.example", "https://*.apps.example", "http://localhost:8080"]
          - name: nullok
            path: "/null"
            backend: app
            origins: ["null"]
          - name: secure
            path: "/secure/*"
            backend: app
            origins: ["*"]
            auth:
              providers: [main, bots]
              token_sources: [header, subprotocol, query, "cookie:session"]
          - name: scoped
            path: "/scoped"
            backend: app
            origins: ["*"]
            auth: { providers: [main], scopes: ["chat:write", "chat:read"] }
          - name: strict
            path: "/strict"
            backend: app
            origins: ["*"]
            auth: { providers: [strict] }
          - name: forward
            path: "/forward"
            backend: app
            origins: ["*"]
            forward_token: true
            auth: { providers: [main] }
          - name: limited
            path: "/limited"
            backend: app
            origins: ["*"]
            limits: { \(limits.isEmpty ? "max_connections: 1" : limits) }
        \(route)
        """
    }

    var file: String { self.directory.appendingPathComponent("proxy.yaml").path }
}

@Suite("Security policy")
struct SecurityPolicyTests {
    /// Sends an upgrade and returns the client's answer head and, if it was forwarded, what the backend received.
    func upgrade(_ proxy: TestProxy, _ backend: RecordingBackend, path: String, headers: [(String, String)] = []) async throws -> (TestResponseHead, TestRequestHead?, TestClient) {
        let before = backend.received.count
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        try await client.sendUpgrade(path: path, extra: headers)
        let head = try await client.readHead()
        let forwarded = head.status == 101 ? backend.received.dropFirst(before).last : nil
        return (head, forwarded, client)
    }

    func withProxy(limits: String = "", _ body: (TestProxy, RecordingBackend, SecurityFixture) async throws -> Void) async throws {
        let fixture = try SecurityFixture.make()
        try await RecordingBackend.with { backend in
            try await TestProxy.with(fixture.config(backendPort: backend.port, limits: limits), file: fixture.file) { proxy in
                try await body(proxy, backend, fixture)
            }
        }
    }

    // MARK: Origin

    @Test func originAllowlist() async throws {
        try await self.withProxy { proxy, backend, _ in
            let cases: [(String?, Int)] = [
                ("https://app.example", 101), ("HTTPS://APP.EXAMPLE:443", 101), ("https://evil.example", 403),
                ("https://app.example:8443", 403), ("http://app.example", 403), ("https://a.apps.example", 101),
                ("https://a.b.apps.example", 403), ("https://apps.example", 403), ("http://localhost:8080", 101),
                ("null", 403), (nil, 101),
            ]
            for (origin, status) in cases {
                let (head, _, client) = try await self.upgrade(proxy, backend, path: "/open", headers: origin.map { [("Origin", $0)] } ?? [])
                #expect(head.status == status, "Origin \(origin ?? "(none)")")
                await client.close()
            }
            let (null, _, client) = try await self.upgrade(proxy, backend, path: "/null", headers: [("Origin", "null")])
            #expect(null.status == 101)
            await client.close()
        }
    }

    // MARK: Tokens

    @Test(arguments: ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"])
    func everyAlgorithmFamilyIsAccepted(_ algorithm: String) async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(sub: "user-\(algorithm)", scope: "a b"), algorithm: algorithm)
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: [("Authorization", "Bearer \(token)")])
            #expect(head.status == 101)
            let request = try #require(forwarded)
            #expect(request.header("x-auth-subject") == "user-\(algorithm)")
            #expect(request.header("x-auth-scopes") == "a b")
            #expect(request.header("x-auth-provider") == "main")
            #expect(request.header("authorization") == nil)
            await client.close()
        }
    }

    @Test func jwksKeysAreSelectedByKid() async throws {
        try await self.withProxy { proxy, backend, fixture in
            for kid in ["rsa", "rsa2"] {
                let token = try await fixture.keys.sign(.valid(sub: kid), algorithm: "RS256", kid: kid)
                let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: [("Authorization", "Bearer \(token)")])
                #expect(head.status == 101)
                #expect(forwarded?.header("x-auth-subject") == kid)
                await client.close()
            }
            // Signed with rsa2 but relabelled as rsa: the kid picks the rsa key, whose check fails.
            let signed = try await fixture.keys.sign(.valid(), algorithm: "RS256", kid: "rsa2").split(separator: ".")
            let relabelled = try TestKeys.forged(header: ["alg": "RS256", "kid": "rsa"], claims: .valid(), secret: nil)
                .split(separator: ".")[0] + "." + signed[1] + "." + signed[2]
            let (head, _, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: [("Authorization", "Bearer \(relabelled)")])
            #expect(head.status == 401)
            #expect(head.header("www-authenticate")?.contains("bad signature") == true)
            await client.close()
        }
    }

    func expectInvalid(_ proxy: TestProxy, _ backend: RecordingBackend, token: String, path: String = "/secure/x", description: String) async throws {
        let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: path, headers: [("Authorization", "Bearer \(token)")])
        #expect(head.status == 401, "\(description)")
        #expect(forwarded == nil)
        #expect(head.header("www-authenticate") == "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"\(description)\"")
        await client.close()
    }

    @Test func invalidTokensAreRefusedWith401() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let keys = fixture.keys
            let now = Date().timeIntervalSince1970
            try await self.expectInvalid(proxy, backend, token: try TestKeys.forged(header: ["alg": "none", "typ": "JWT"], claims: .valid(), secret: nil), description: "algorithm not accepted")
            let confused = try TestKeys.forged(header: ["alg": "HS256", "kid": "rsa"], claims: .valid(), secret: Array(keys.rsaPublicPEM.utf8))
            try await self.expectInvalid(proxy, backend, token: confused, description: "bad signature")
            let valid = try await keys.sign(.valid(), algorithm: "ES256")
            let tampered = valid.dropLast(4) + (valid.hasSuffix("AAAA") ? "BBBB" : "AAAA")
            try await self.expectInvalid(proxy, backend, token: String(tampered), description: "bad signature")
            let expired = try await keys.sign(TestClaims(sub: "a", exp: now - 60), algorithm: "HS256")
            try await self.expectInvalid(proxy, backend, token: expired, description: "token expired")
            let early = try await keys.sign(TestClaims(sub: "a", exp: now + 600, nbf: now + 300), algorithm: "HS256")
            try await self.expectInvalid(proxy, backend, token: early, description: "token not yet valid")
            let unknownKid = try await keys.sign(.valid(), algorithm: "RS256", kid: "nope")
            try await self.expectInvalid(proxy, backend, token: unknownKid, description: "unknown key id")
            try await self.expectInvalid(proxy, backend, token: "not-a-known-token", description: "unknown token")
            // A signed subject holding CRLF would forge headers toward the backend.
            let injecting = try await keys.sign(.valid(sub: "alice\r\nX-Auth-Scopes: admin"), algorithm: "HS256")
            try await self.expectInvalid(proxy, backend, token: injecting, description: "sub or scope claim holds control characters")
            // The strict provider: RS256 only, issuer and audience required.
            let good = try await keys.sign(TestClaims(sub: "s", iss: "https://auth.example", aud: ["ws-api"], exp: now + 600), algorithm: "RS256")
            let (head, _, client) = try await self.upgrade(proxy, backend, path: "/strict", headers: [("Authorization", "Bearer \(good)")])
            #expect(head.status == 101)
            await client.close()
            let wrongIssuer = try await keys.sign(TestClaims(sub: "s", iss: "https://evil.example", aud: ["ws-api"], exp: now + 600), algorithm: "RS256")
            try await self.expectInvalid(proxy, backend, token: wrongIssuer, path: "/strict", description: "wrong issuer")
            let wrongAudience = try await keys.sign(TestClaims(sub: "s", iss: "https://auth.example", aud: ["other"], exp: now + 600), algorithm: "RS256")
            try await self.expectInvalid(proxy, backend, token: wrongAudience, path: "/strict", description: "wrong audience")
            let hsOnStrict = try await keys.sign(TestClaims(sub: "s", iss: "https://auth.example", aud: ["ws-api"], exp: now + 600), algorithm: "HS256")
            try await self.expectInvalid(proxy, backend, token: hsOnStrict, path: "/strict", description: "algorithm not accepted")
            let esWithRSAKid = try await keys.sign(.valid(), algorithm: "ES256", kid: "rsa")
            try await self.expectInvalid(proxy, backend, token: esWithRSAKid, description: "algorithm does not match the key")
        }
    }

    @Test func missingTokenAndMissingScope() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let (missing, _, client) = try await self.upgrade(proxy, backend, path: "/secure/x")
            #expect(missing.status == 401)
            #expect(missing.header("www-authenticate") == "Bearer realm=\"gatehouse\"")
            await client.close()
            let partial = try await fixture.keys.sign(.valid(scope: "chat:read"), algorithm: "HS256")
            let (scope, _, client2) = try await self.upgrade(proxy, backend, path: "/scoped", headers: [("Authorization", "Bearer \(partial)")])
            #expect(scope.status == 403)
            #expect(scope.header("www-authenticate") == "Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"chat:write chat:read\"")
            await client2.close()
            let full = try await fixture.keys.sign(.valid(scope: "chat:read chat:write other"), algorithm: "HS256")
            let (ok, _, client3) = try await self.upgrade(proxy, backend, path: "/scoped", headers: [("Authorization", "Bearer \(full)")])
            #expect(ok.status == 101)
            await client3.close()
        }
    }

    @Test func staticTokens() async throws {
        try await self.withProxy { proxy, backend, _ in
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: [("Authorization", "Bearer \(SecurityFixture.botToken)")])
            #expect(head.status == 101)
            #expect(forwarded?.header("x-auth-subject") == "buildbot")
            #expect(forwarded?.header("x-auth-provider") == "bots")
            #expect(forwarded?.header("x-auth-scopes") == "")
            await client.close()
        }
    }

    // MARK: Token sources

    @Test func subprotocolTokenAlone() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(), algorithm: "HS256")
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: [("Sec-WebSocket-Protocol", "bearer.\(token)")])
            #expect(head.status == 101)
            #expect(head.headers("sec-websocket-protocol") == ["bearer.\(token)"])
            #expect(forwarded?.header("sec-websocket-protocol") == nil)
            #expect(forwarded?.header("x-auth-subject") == "alice")
            await client.close()
        }
    }

    @Test func subprotocolTokenWithOtherProtocols() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(), algorithm: "HS256")
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: [("Sec-WebSocket-Protocol", "chat.v2, bearer.\(token), chat.v1")])
            #expect(head.status == 101)
            #expect(forwarded?.header("sec-websocket-protocol") == "chat.v2, chat.v1")
            #expect(head.headers("sec-websocket-protocol") == ["chat.v2"])
            await client.close()
        }
    }

    @Test func queryTokenIsStrippedFromTheForwardedTarget() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(), algorithm: "HS256")
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x?room=1&access_token=\(token)&b=%20")
            #expect(head.status == 101)
            #expect(forwarded?.target == "/secure/x?room=1&b=%20")
            await client.close()
            let (only, forwardedOnly, client2) = try await self.upgrade(proxy, backend, path: "/secure/x?access_token=\(token)")
            #expect(only.status == 101)
            #expect(forwardedOnly?.target == "/secure/x")
            await client2.close()
            #expect(!proxy.logs.all.contains { $0.contains(token) })
        }
    }

    @Test func cookieTokenIsRemovedFromTheForwardedCookies() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(), algorithm: "HS256")
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: [("Cookie", "theme=dark; session=\(token); lang=en")])
            #expect(head.status == 101)
            #expect(forwarded?.header("cookie") == "theme=dark; lang=en")
            await client.close()
        }
    }

    @Test func spoofedIdentityHeadersAreDropped() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(sub: "alice"), algorithm: "HS256")
            let spoofed = [("X-Auth-Subject", "admin"), ("x-auth-scopes", "everything"), ("X-AUTH-PROVIDER", "root")]
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/secure/x", headers: spoofed + [("Authorization", "Bearer \(token)")])
            #expect(head.status == 101)
            #expect(forwarded?.headers("x-auth-subject") == ["alice"])
            #expect(forwarded?.headers("x-auth-scopes") == [""])
            #expect(forwarded?.headers("x-auth-provider") == ["main"])
            await client.close()
            let (open, openForwarded, client2) = try await self.upgrade(proxy, backend, path: "/open", headers: spoofed)
            #expect(open.status == 101)
            #expect(openForwarded?.header("x-auth-subject") == nil)
            #expect(openForwarded?.header("x-auth-scopes") == nil)
            #expect(openForwarded?.header("x-auth-provider") == nil)
            await client2.close()
        }
    }

    @Test func forwardTokenPassesAuthorization() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(), algorithm: "HS256")
            let (head, forwarded, client) = try await self.upgrade(proxy, backend, path: "/forward", headers: [("Authorization", "Bearer \(token)")])
            #expect(head.status == 101)
            #expect(forwarded?.header("authorization") == "Bearer \(token)")
            await client.close()
        }
    }

    @Test func tokensNeverReachTheLogs() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(), algorithm: "HS256")
            let expired = try await fixture.keys.sign(TestClaims(sub: "a", exp: 1), algorithm: "HS256")
            for (path, headers) in [("/secure/x", [("Authorization", "Bearer \(token)")]), ("/secure/x?access_token=\(expired)", []), ("/nope?access_token=\(token)", [])] {
                let (_, _, client) = try await self.upgrade(proxy, backend, path: path, headers: headers)
                await client.close()
            }
            #expect(!proxy.logs.all.isEmpty)
            #expect(!proxy.logs.all.contains { $0.contains(token) || $0.contains(expired) })
        }
    }

    // MARK: Abuse limits

    @Test func routeConnectionLimitIs503AndFreesOnClose() async throws {
        try await self.withProxy { proxy, backend, _ in
            let (first, _, client1) = try await self.upgrade(proxy, backend, path: "/limited")
            #expect(first.status == 101)
            let (second, _, client2) = try await self.upgrade(proxy, backend, path: "/limited")
            #expect(second.status == 503)
            #expect(second.header("retry-after") == "5")
            await client2.close()
            await client1.close()
            // The slot comes back once the first connection is gone; its release is observable only by trying the
            // route again (each refused try holds no slot).
            try await eventually("the route slot to come back") {
                let (head, _, client) = try await self.upgrade(proxy, backend, path: "/limited")
                await client.close()
                return head.status == 101
            }
        }
    }

    @Test func perIPConnectionLimitIs429() async throws {
        try await self.withProxy(limits: "max_connections_per_ip: 2") { proxy, backend, _ in
            var clients: [TestClient] = []
            for _ in 0..<2 {
                let (head, _, client) = try await self.upgrade(proxy, backend, path: "/limited")
                #expect(head.status == 101)
                clients.append(client)
            }
            let (third, _, client) = try await self.upgrade(proxy, backend, path: "/limited")
            #expect(third.status == 429)
            #expect(third.header("retry-after").flatMap(Int.init) != nil)
            await client.close()
            for client in clients { await client.close() }
        }
    }

    @Test func handshakeRateLimitIs429() async throws {
        try await self.withProxy(limits: "handshakes_per_ip_per_second: 2") { proxy, backend, _ in
            var statuses: [Int] = []
            var retryAfter: String?
            for _ in 0..<10 {
                let (head, _, client) = try await self.upgrade(proxy, backend, path: "/limited")
                statuses.append(head.status)
                if head.status == 429 { retryAfter = head.header("retry-after") }
                await client.close()
            }
            #expect(statuses.prefix(2) == [101, 101])
            #expect(statuses.contains(429))
            #expect(retryAfter == "1")
        }
    }

    // MARK: Independent client

    @Test func pythonBrowserStyleSubprotocolToken() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let token = try await fixture.keys.sign(.valid(), algorithm: "ES256")
            let result = try await ExternalProcess.run(
                ["python3", ExternalProcess.peerScript("ws_token_client.py"), "ws://127.0.0.1:\(try proxy.port("plain"))/secure/x", token],
                timeout: 60
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("subprotocol=bearer.\(token)"))
            #expect(result.output.contains("refused=401"))
        }
    }
}

@Suite("Live token expiry")
struct LiveExpiryTests {
    @Test func expiredTokenClosesAnOpenConnectionWith1008() async throws {
        let fixture = try SecurityFixture.make()
        let backend = try await RecordingBackend.start()
        let yaml = fixture.config(backendPort: backend.port).replacingOccurrences(of: "leeway: 1s", with: "leeway: 0")
        try await TestProxy.with(yaml, file: fixture.file) { proxy in
            // Long enough for the handshake to finish before expiry on a loaded machine (3 s was not, in parallel).
            let exp = Date().timeIntervalSince1970 + 8
            let token = try await fixture.keys.sign(TestClaims(sub: "short-lived", exp: exp), algorithm: "HS256")
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/secure/x", extra: [("Authorization", "Bearer \(token)")])
            #expect(try await client.readHead().status == 101)
            // A deadline on the close itself: it comes at expiry, not before (the margin after it is for load).
            let close = try await client.readFrame(timeout: .seconds(15))
            let closedAt = Date().timeIntervalSince1970
            #expect(close.closeCode == 1008)
            #expect(close.closeReason == "token expired")
            #expect(closedAt >= exp - 0.05)
            #expect(closedAt < exp + 3)
            try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1008))
            _ = try await client.waitForClose()
            let line = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(line.contains("close_code=1008"))
            #expect(line.contains("closed_by=proxy"))
            #expect(line.contains("subject=short-lived"))
            await client.close()
        }
        await backend.stop()
    }

    @Test func enforceExpiryFalseKeepsTheConnection() async throws {
        let fixture = try SecurityFixture.make()
        let backend = try await RecordingBackend.start()
        let yaml = fixture.config(backendPort: backend.port)
            .replacingOccurrences(of: "leeway: 1s", with: "leeway: 0")
            .replacingOccurrences(of: "    forward_token: true\n", with: "    forward_token: true\n    enforce_expiry: false\n")
        try await TestProxy.with(yaml, file: fixture.file) { proxy in
            // Long enough for the handshake to finish before expiry on a loaded machine (3 s was not, in parallel).
            let exp = Date().timeIntervalSince1970 + 8
            let token = try await fixture.keys.sign(TestClaims(sub: "s", exp: exp), algorithm: "HS256")
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/forward", extra: [("Authorization", "Bearer \(token)")])
            #expect(try await client.readHead().status == 101)
            // Well past exp the connection still relays (the backend answers the close itself).
            let wait = Int64((exp - Date().timeIntervalSince1970 + 1) * 1000)
            await #expect(throws: TestError.self) { _ = try await client.readFrame(timeout: .milliseconds(wait)) }
            #expect(Date().timeIntervalSince1970 > exp)
            try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
            #expect(try await client.readFrame().closeCode == 1000)
            await client.close()
        }
        await backend.stop()
    }
}
