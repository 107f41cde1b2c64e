import Foundation

/// The RFC 7662 endpoint of `Peers/introspection_server.py`, over HTTPS with a certificate from a CA made for the
/// test. Its answers and behaviour are files the server reads per request; each request it receives is one output
/// line, which is how tests count requests.
struct TestIntrospectionServer {
    /// Client credentials with characters that must be form-urlencoded before Basic (RFC 6749 §2.3.1).
    static let clientID = "gatehouse proxy:1"
    static let clientSecret = "s3cr3t+/=:% é"

    /// Environment variables holding the credentials (and a wrong secret), set once for the whole run: `setenv`
    /// while other tests read the environment is a data race in glibc.
    static let variables: (id: String, secret: String, wrongSecret: String) = {
        let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let names = ("GATEHOUSE_TEST_INTROSPECTION_ID_\(suffix)", "GATEHOUSE_TEST_INTROSPECTION_SECRET_\(suffix)",
                     "GATEHOUSE_TEST_INTROSPECTION_WRONG_\(suffix)")
        setenv(names.0, clientID, 1)
        setenv(names.1, clientSecret, 1)
        setenv(names.2, "not-the-secret", 1)
        return names
    }()

    let server: PythonPeerServer
    let port: Int
    let authority: TestCertificateAuthority
    let stateDirectory: URL

    var endpoint: String { "https://127.0.0.1:\(self.port)/introspect" }
    var caPath: String { self.authority.pemPath }

    static func start() async throws -> TestIntrospectionServer {
        _ = Self.variables
        let authority = try TestCertificateAuthority.make()
        let leaf = try authority.issue("idp", names: ["127.0.0.1", "localhost"])
        let state = authority.directory.appendingPathComponent("idp-state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        let (server, port) = try await PythonPeerServer.start(
            "introspection_server.py",
            ["--cert", leaf.cert, "--key", leaf.key, "--client-id", clientID, "--client-secret", clientSecret, "--state", state.path]
        )
        return TestIntrospectionServer(server: server, port: port, authority: authority, stateDirectory: state)
    }

    /// Runs `body` with a started server and stops it afterwards, whatever happens.
    static func with<T>(_ body: (TestIntrospectionServer) async throws -> T) async throws -> T {
        let server = try await Self.start()
        defer { server.stop() }
        return try await body(server)
    }

    func stop() {
        self.server.stop()
    }

    /// Sets the answers: token to answer object (`{"active": false}` for tokens not listed).
    func setTokens(_ tokens: [String: [String: Any]]) throws {
        try self.write(tokens, to: "tokens.json")
    }

    /// Sets how the server misbehaves (`delay`, `trickle`, `status`, `body`, `pad`); empty for normal answers.
    func setBehaviour(_ behaviour: [String: Any]) throws {
        try self.write(behaviour, to: "behaviour.json")
    }

    private func write(_ object: Any, to name: String) throws {
        let data = try JSONSerialization.data(withJSONObject: object)
        try data.write(to: self.stateDirectory.appendingPathComponent(name), options: .atomic)
    }

    /// The request lines received so far, for `token` if given.
    func requests(token: String? = nil) -> [String] {
        self.server.child.output.all.filter { line in
            guard line.hasPrefix("introspect ") else { return false }
            guard let token else { return true }
            return line.hasSuffix(" token=\(token)")
        }
    }

    /// The requests logged so far, once at least `count` are in: the server prints each line before answering, but
    /// the test reads its output on another thread, so a line can trail the answer that follows it.
    func requests(token: String? = nil, atLeast count: Int) async throws -> [String] {
        try await eventuallyValue("\(count) introspection request(s)\(token.map { " for \($0)" } ?? "")", deadline: .seconds(5)) {
            let lines = self.requests(token: token)
            return lines.count >= count ? lines : nil
        }
    }

    /// The largest number of requests the server was answering at once.
    var maxInFlight: Int {
        self.requests().compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("inflight=") }.flatMap { Int($0.dropFirst("inflight=".count)) }
        }.max() ?? 0
    }
}
