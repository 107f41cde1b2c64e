import Foundation
import Testing
@testable import Gatehouse

/// `oidc_issuer`: the discovery document names the JWKS and must speak for exactly the configured issuer.
@Suite("OIDC discovery")
struct OIDCDiscoveryTests {
    typealias Fixture = RemoteJWKSFixture

    static func provider(_ idp: TestIdentityProvider, issuer: String? = nil, _ extra: [String] = []) -> [String] {
        ["- name: idp", "  type: jwt", "  algorithms: [RS256]", "  oidc_issuer: \"\(issuer ?? idp.baseURL)\"", "  ca: \(idp.caPath)"]
            + extra.map { "  " + $0 }
    }

    static func token(kid: String = "rsa", issuer: String?) async throws -> String {
        var claims = TestClaims.valid()
        claims.iss = issuer
        return try await TestKeys.shared.get().sign(claims, algorithm: "RS256", kid: kid)
    }

    static func document(_ object: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object))
    }

    @Test func theDocumentMustNameTheConfiguredIssuerExactly() throws {
        let issuer = "https://idp.example/realms/x"
        let good = try OIDCDiscovery.parse(Self.document(["issuer": issuer, "jwks_uri": "https://idp.example/certs"]), expectedIssuer: issuer)
        #expect(good == OIDCDiscovery(issuer: issuer, jwksURI: "https://idp.example/certs"))
        let cases: [([String: Any], OIDCDiscovery.Problem)] = [
            (["issuer": issuer + "/", "jwks_uri": "https://idp.example/certs"], .issuerMismatch(expected: issuer, found: issuer + "/")),
            (["issuer": "https://evil.example/realms/x", "jwks_uri": "https://idp.example/certs"],
             .issuerMismatch(expected: issuer, found: "https://evil.example/realms/x")),
            (["jwks_uri": "https://idp.example/certs"], .missing("issuer")),
            (["issuer": issuer], .missing("jwks_uri")),
        ]
        for (object, problem) in cases {
            #expect(throws: problem) { try OIDCDiscovery.parse(Self.document(object), expectedIssuer: issuer) }
            #expect(problem.isConfigurationError)
        }
        #expect(throws: OIDCDiscovery.Problem.notJSON) { try OIDCDiscovery.parse(Array("<html>".utf8), expectedIssuer: issuer) }
        #expect(!OIDCDiscovery.Problem.notJSON.isConfigurationError, "an error page is retried")
    }

    @Test func theJWKSURIFollowsTheSameRulesAsJWKSURL() throws {
        let issuer = "https://idp.example"
        do {
            _ = try OIDCDiscovery.parse(Self.document(["issuer": issuer, "jwks_uri": "http://idp.example/certs"]), expectedIssuer: issuer)
            Issue.record("an http:// jwks_uri to another host was accepted")
        } catch let error as OIDCDiscovery.Problem {
            guard case .jwksURINotAllowed(let message) = error else { throw error }
            #expect(message.contains("jwks_uri uses http:// to 'idp.example', which is not a loopback host"))
        }
        #expect(throws: Never.self) {
            try OIDCDiscovery.parse(Self.document(["issuer": issuer, "jwks_uri": "http://127.0.0.1:8080/certs"]), expectedIssuer: issuer)
        }
    }

    @Test func aMismatchingIssuerIsAnErrorAtStartUp() async throws {
        let keys = try TestKeys.shared.get()
        try await TestIdentityProvider.with(jwks: try TestIdentityProvider.jwks(keys, kids: ["rsa"]), issuer: "https://other.example/realms/x") { idp in
            let yaml = try Fixture.config(Self.provider(idp))
            do {
                let proxy = try await TestProxy.start(yaml)
                await proxy.stop()
                Issue.record("the proxy started with a discovery document for another issuer")
            } catch let error as ConfigError {
                #expect(error.message.contains("auth provider 'idp'"), "\(error)")
                #expect(error.message.contains("names issuer 'https://other.example/realms/x', but oidc_issuer is '\(idp.baseURL)'"), "\(error)")
                #expect(error.line == 11, "blames oidc_issuer: \(error)")
            }
        }
    }

    @Test func discoveryFindsTheKeysAndSetsTheIssuer() async throws {
        let keys = try TestKeys.shared.get()
        try await TestIdentityProvider.with(jwks: try TestIdentityProvider.jwks(keys, kids: ["rsa"])) { idp in
            try await TestProxy.with(try Fixture.config(Self.provider(idp))) { proxy in
                // Keys are known once the background fetch ends; a token meanwhile waits for that fetch.
                let accepted = try await Fixture.handshake(proxy, "/remote", try await Self.token(issuer: idp.baseURL))
                #expect(accepted.status == 101, "\(accepted.challenge ?? "")")
                let wrong = try await Fixture.handshake(proxy, "/remote", try await Self.token(issuer: "https://other.example"))
                #expect(wrong.challenge == Fixture.challenge(.wrongIssuer))
                #expect(try await Fixture.handshake(proxy, "/remote", try await Self.token(issuer: nil)).status == 401)
                let counts = try await idp.counts()
                #expect(counts.discovery == 1 && counts.jwks == 1, "\(counts)")
                let state = try #require(try await Fixture.auth(proxy).providers.first)
                #expect(state["source"] as? String == idp.baseURL + "/.well-known/openid-configuration")
                #expect(state["jwks_url"] as? String == idp.jwksURL)
                #expect(state["issuer"] as? String == idp.baseURL)
            }
        }
    }

    @Test func anUnreachableProviderAtStartUpIsRetriedInTheBackground() async throws {
        let keys = try TestKeys.shared.get()
        try await TestIdentityProvider.with(jwks: try TestIdentityProvider.jwks(keys, kids: ["rsa"])) { idp in
            try await idp.control(["mode": "down"])
            try await TestProxy.with(try Fixture.config(Self.provider(idp))) { proxy in
                _ = try await proxy.logs.waitForLine(containing: "discovery failed at start-up; starting anyway")
                let refused = try await Fixture.handshake(proxy, "/remote", try await Self.token(issuer: idp.baseURL))
                #expect(refused.challenge == Fixture.challenge(.keysNotAvailable))
                let reason = try #require(proxy.server.identity.notReadyReason)
                #expect(reason.contains("auth provider 'idp'") && reason.contains("503"), "\(reason)")
                #expect(try await Fixture.handshake(proxy, "/local", try await Fixture.hsToken()).status == 101)
                try await idp.control(["mode": "ok"])
                _ = try await proxy.logs.waitForLine(containing: "key set loaded")
                #expect(try await Fixture.handshake(proxy, "/remote", try await Self.token(issuer: idp.baseURL)).status == 101)
                #expect(proxy.server.identity.notReadyReason == nil)
            }
        }
    }

    @Test func aMismatchAtReloadIsAFailedReload() async throws {
        let keys = try TestKeys.shared.get()
        try await TestIdentityProvider.with(jwks: try TestIdentityProvider.jwks(keys, kids: ["rsa"])) { idp in
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-oidc-\(UUID().uuidString).yaml").path
            let yaml = try Fixture.config(Self.provider(idp))
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            try await TestProxy.with(yaml, file: path) { proxy in
                #expect(try await Fixture.handshake(proxy, "/remote", try await Self.token(issuer: idp.baseURL)).status == 101)
                let running = try #require(proxy.server.identity.keySet(named: "idp"))
                // A changed setting makes the reload rediscover; the provider now speaks for another issuer.
                try await idp.control(["issuer": "https://moved.example"])
                try Fixture.config(Self.provider(idp, ["jwks_timeout: 3s"])).write(toFile: path, atomically: true, encoding: .utf8)
                guard case .failure(let error) = await proxy.server.reload() else {
                    Issue.record("the reload succeeded")
                    return
                }
                #expect(error.message.contains("names issuer 'https://moved.example'"), "\(error)")
                // The running configuration and its key set are untouched.
                #expect(proxy.server.identity.keySet(named: "idp") === running)
                #expect(running.snapshot.nextRefresh != nil)
                #expect(try await Fixture.handshake(proxy, "/remote", try await Self.token(issuer: idp.baseURL)).status == 101)
            }
        }
    }
}
