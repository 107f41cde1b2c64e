import Foundation
import Gatehouse
import NIOHTTP1

/// The HTTPS identity provider of `Peers/idp_server.py`, with a CA made for the run: OIDC discovery and a JWKS the
/// test rotates, takes down, slows down or bloats through a plain-HTTP control port, and request counts.
struct TestIdentityProvider {
    let server: PythonPeerServer
    let port: Int
    let controlPort: Int
    let authority: TestCertificateAuthority

    /// The issuer it speaks for by default (its own base URL).
    var baseURL: String { "https://127.0.0.1:\(self.port)" }
    var jwksURL: String { self.baseURL + "/jwks.json" }
    /// PEM of the CA that issued its certificate (the proxy's `ca:`).
    var caPath: String { self.authority.pemPath }

    /// Starts the provider serving `jwks`; `issuer` overrides the issuer its discovery document names.
    static func start(jwks: String, issuer: String? = nil) async throws -> TestIdentityProvider {
        let authority = try TestCertificateAuthority.make()
        let leaf = try authority.issue("idp", names: ["127.0.0.1", "localhost"])
        let jwksPath = authority.directory.appendingPathComponent("initial-jwks.json").path
        try jwks.write(toFile: jwksPath, atomically: true, encoding: .utf8)
        var arguments = ["--cert", leaf.cert, "--key", leaf.key, "--jwks", jwksPath]
        if let issuer { arguments += ["--issuer", issuer] }
        let (server, port) = try await PythonPeerServer.start("idp_server.py", arguments)
        do {
            let line = try await server.waitForLine(containing: "control ")
            guard let control = line.split(separator: " ").last.flatMap({ Int($0) }) else { throw TestError("no control port in '\(line)'") }
            return TestIdentityProvider(server: server, port: port, controlPort: control, authority: authority)
        } catch {
            server.stop()
            throw error
        }
    }

    /// Runs `body` with a started provider and stops it afterwards, whatever happens.
    static func with<T>(jwks: String, issuer: String? = nil, _ body: (TestIdentityProvider) async throws -> T) async throws -> T {
        let provider = try await Self.start(jwks: jwks, issuer: issuer)
        defer { provider.stop() }
        return try await body(provider)
    }

    func stop() {
        self.server.stop()
    }

    /// Changes what it serves: `jwks` (a JSON string), `mode` (ok, down, hang, slow, oversize, oversize_chunked),
    /// `cache_control`, `issuer`, `oversize_bytes`.
    func control(_ change: [String: any Sendable]) async throws {
        var object: [String: Any] = [:]
        for (key, value) in change {
            if key == "jwks", let text = value as? String {
                object[key] = try JSONSerialization.jsonObject(with: Data(text.utf8))
            } else {
                object[key] = value
            }
        }
        let body = try JSONSerialization.data(withJSONObject: object)
        let (status, text) = try await AdminClient.request(
            .POST, "/control", address: BindAddress(host: "127.0.0.1", port: self.controlPort), token: nil, body: Array(body),
            contentType: "application/json", timeout: .seconds(5)
        )
        guard status == 200 else { throw TestError("idp control: \(status) \(text)") }
    }

    /// Requests served so far.
    struct Counts: Equatable {
        var jwks: Int
        var discovery: Int
        var notModified: Int
    }

    func counts() async throws -> Counts {
        let (status, text) = try await AdminClient.request(
            .GET, "/counts", address: BindAddress(host: "127.0.0.1", port: self.controlPort), token: nil, timeout: .seconds(5)
        )
        guard status == 200, let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Int] else {
            throw TestError("idp counts: \(status) \(text)")
        }
        return Counts(jwks: object["jwks"] ?? -1, discovery: object["discovery"] ?? -1, notModified: object["not_modified"] ?? -1)
    }

    /// The public JWKS of `keys` restricted to `kids` (of rsa, rsa2, p256, p384, ed).
    static func jwks(_ keys: TestKeys, kids: [String]) throws -> String {
        guard let all = try JSONSerialization.jsonObject(with: Data(try keys.jwks().utf8)) as? [String: Any],
            let list = all["keys"] as? [[String: Any]]
        else { throw TestError("TestKeys.jwks() is not a JWKS") }
        let chosen = list.filter { kids.contains($0["kid"] as? String ?? "") }
        return String(decoding: try JSONSerialization.data(withJSONObject: ["keys": chosen]), as: UTF8.self)
    }
}
