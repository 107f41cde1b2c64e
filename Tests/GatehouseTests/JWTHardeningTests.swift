import Foundation
import NIOHPACK
import Testing
@testable import Gatehouse

/// No byte of a token reaches a response header, and a JWT without `exp` is refused unless the provider allows it.
@Suite("JWT hardening")
struct JWTHardeningTests {
    static func config(backendPort: Int, fixture: SecurityFixture, noExpiryKey: String = "require_exp") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
          - name: secure
            bind: "127.0.0.1:0"
            tls: { self_signed: true }
        backends:
          - name: app
            servers: ["127.0.0.1:\(backendPort)"]
        auth:
          - name: main
            type: jwt
            algorithms: [HS256, RS256]
            secret_env: \(fixture.secretVariable)
            jwks_file: jwks.json
          - name: lax
            type: jwt
            algorithms: [HS256]
            secret_env: \(fixture.secretVariable)
            \(noExpiryKey): false
        routes:
          - name: secure
            path: "/secure"
            backend: app
            origins: ["*"]
            auth: { providers: [main] }
          - name: lax
            path: "/lax"
            backend: app
            origins: ["*"]
            auth: { providers: [lax] }
        """
    }

    func withProxy(_ body: (TestProxy, RecordingBackend, SecurityFixture) async throws -> Void) async throws {
        let fixture = try SecurityFixture.make()
        try await RecordingBackend.with { backend in
            try await TestProxy.with(Self.config(backendPort: backend.port, fixture: fixture), file: fixture.file) { proxy in
                try await body(proxy, backend, fixture)
            }
        }
    }

    /// Every `WWW-Authenticate` value an invalid token may get.
    static let fixedChallenges = Set(TokenRejection.allCases.map {
        "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"\($0.rawValue)\""
    })

    static let injection = "\r\nSet-Cookie: pwned=1"

    /// Tokens whose JOSE header carries CR LF and a header line, each invalid for a different reason.
    static func injectingTokens() throws -> [(String, String)] {
        let claims = TestClaims.valid()
        let wrongSecret = Array("another-secret-that-is-long-enough-0123456789".utf8)
        return [
            ("alg", try TestKeys.forged(header: ["alg": "RS256" + injection, "typ": "JWT"], claims: claims, secret: wrongSecret)),
            ("kid", try TestKeys.forged(header: ["alg": "RS256", "kid": "rsa" + injection], claims: claims, secret: wrongSecret)),
            ("typ", try TestKeys.forged(header: ["alg": "HS256", "typ": "JWT" + injection], claims: claims, secret: wrongSecret)),
        ]
    }

    @Test func crlfInTheJOSEHeaderNeverReachesAnHTTP1Response() async throws {
        try await self.withProxy { proxy, backend, _ in
            for (field, token) in try Self.injectingTokens() {
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: "/secure", extra: [("Authorization", "Bearer \(token)")])
                let (head, body) = try await client.readResponse()
                #expect(head.status == 401, "CRLF in \(field)")
                #expect(head.header("set-cookie") == nil, "CRLF in \(field)")
                #expect(head.headers("www-authenticate").count == 1)
                #expect(Self.fixedChallenges.contains(head.header("www-authenticate") ?? ""), "CRLF in \(field): \(head.headers)")
                #expect(!body.contains("pwned"))
                await client.close()
            }
            #expect(backend.received.isEmpty)
            #expect(!proxy.logs.contains("pwned"))
        }
    }

    @Test func crlfInTheJOSEHeaderNeverReachesAnHTTP2Response() async throws {
        try await self.withProxy { proxy, backend, _ in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            for (field, token) in try Self.injectingTokens() {
                let stream = try await client.openStream(path: "/secure", extra: [("authorization", "Bearer \(token)")])
                let headers = try await stream.readHeaders()
                #expect(headers.first(name: ":status") == "401", "CRLF in \(field)")
                #expect(!headers.contains(name: "set-cookie"), "CRLF in \(field)")
                let challenges = headers["www-authenticate"]
                #expect(challenges.count == 1)
                #expect(challenges.allSatisfy { Self.fixedChallenges.contains($0) }, "CRLF in \(field): \(headers)")
                #expect(!headers.contains { $0.value.contains("pwned") })
                try await stream.waitForEnd()
            }
            await client.close()
            #expect(backend.received.isEmpty)
            #expect(!proxy.logs.contains("pwned"))
        }
    }

    @Test func rejectionsComeFromTheFixedSet() async throws {
        try await self.withProxy { proxy, _, fixture in
            let cases: [(String, TokenRejection)] = [
                (try TestKeys.forged(header: ["alg": "none"], claims: .valid(), secret: nil), .algorithmNotAccepted),
                (try TestKeys.forged(header: ["alg": "ES256", "kid": "rsa"], claims: .valid(), secret: nil), .algorithmNotAccepted),
                (try await fixture.keys.sign(.valid(), algorithm: "RS256", kid: "x\r\ny"), .unknownKeyID),
            ]
            for (token, rejection) in cases {
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: "/secure", extra: [("Authorization", "Bearer \(token)")])
                let (head, body) = try await client.readResponse()
                #expect(head.status == 401)
                #expect(head.header("www-authenticate") == "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"\(rejection.rawValue)\"")
                #expect(body == "invalid token: \(rejection.rawValue)\n")
                await client.close()
            }
        }
    }

    @Test func refusalHeadersNeverCarryControlCharacters() {
        let refusal = HandshakeRefusal(.unauthorized, "invalid token", headers: [("WWW-Authenticate", "Bearer\r\nSet-Cookie: a=b"), ("Retry-After", "5")])
        let (head, _) = refusal.responseHead(closing: true)
        #expect(head.headers["www-authenticate"].isEmpty)
        #expect(head.headers["retry-after"] == ["5"])
        let (h2, _) = HTTP2ResponseBuilder.refusal(refusal)
        #expect(h2["www-authenticate"].isEmpty)
        #expect(h2["retry-after"] == ["5"])
    }

    @Test func scopesEchoedInChallengesMustBeScopeTokens() throws {
        let fixture = try SecurityFixture.make()
        let yaml = Self.config(backendPort: 9, fixture: fixture)
        for scope in ["a\\\"b", "a b", ""] {
            let bad = yaml.replacingOccurrences(of: "auth: { providers: [lax] }", with: "auth: { providers: [lax], scopes: [\"\(scope)\"] }")
            let error = #expect(throws: ConfigError.self, "scope \(scope)") { try ProxyConfig.parse(yaml: bad, file: fixture.file) }
            #expect(error.map { "\($0)".contains("scope") } == true, "\(String(describing: error))")
        }
        let good = yaml.replacingOccurrences(of: "auth: { providers: [lax] }", with: "auth: { providers: [lax], scopes: [\"chat:write\"] }")
        #expect(try ProxyConfig.parse(yaml: good, file: fixture.file).routes.last?.auth?.scopes == ["chat:write"])
    }

    // MARK: exp

    @Test func tokenWithoutExpIsRefusedUnlessTheProviderAllowsIt() async throws {
        try await self.withProxy { proxy, backend, fixture in
            let eternal = try await fixture.keys.sign(TestClaims(sub: "forever"), algorithm: "HS256")
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/secure", extra: [("Authorization", "Bearer \(eternal)")])
            let head = try await client.readHead()
            #expect(head.status == 401)
            #expect(head.header("www-authenticate") == "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"token has no expiry\"")
            await client.close()
            #expect(backend.received.isEmpty)

            let lax = try await TestClient.connect(port: try proxy.port("plain"))
            try await lax.sendUpgrade(path: "/lax", extra: [("Authorization", "Bearer \(eternal)")])
            #expect(try await lax.readHead().status == 101)
            #expect(backend.received.last?.header("x-auth-subject") == "forever")
            await lax.close()
        }
    }

    @Test func requireExpDefaultsToTrueAndItsTypoIsAnError() throws {
        let fixture = try SecurityFixture.make()
        let config = try ProxyConfig.parse(yaml: Self.config(backendPort: 9, fixture: fixture), file: fixture.file)
        let requirements = config.auth.compactMap { provider -> Bool? in
            if case .jwt(let jwt) = provider.kind { return jwt.requireExpiry }
            return nil
        }
        #expect(requirements == [true, false])
        let typo = Self.config(backendPort: 9, fixture: fixture, noExpiryKey: "require_expiry")
        do {
            _ = try ProxyConfig.parse(yaml: typo, file: fixture.file)
            Issue.record("require_expiry was accepted")
        } catch {
            #expect("\(error)".contains("unknown key 'require_expiry'"))
            #expect("\(error)".contains("require_exp"))
        }
    }
}
