import Foundation
import NIOHTTP1
import Testing
@testable import Gatehouse

/// Client headers that a CGI, WSGI, PHP or Rack backend would read as a header the proxy sets or strips
/// (`X_Auth_Subject` is `HTTP_X_AUTH_SUBJECT`, like `X-Auth-Subject`) never reach the backend.
@Suite("Header hardening")
struct HeaderHardeningTests {
    /// A header name as such backends see it: lower case, `_` for `-`.
    static func folded(_ name: String) -> String {
        name.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    static func edits(
        dropAuthorization: Bool = false, subprotocols: [Substring]? = nil, dropCookies: Set<String> = [], key: String? = nil,
        allowUnderscores: Bool = false
    ) -> ForwardedRequest.Edits {
        ForwardedRequest.Edits(
            target: "/", subprotocols: subprotocols, dropAuthorization: dropAuthorization, dropCookies: dropCookies, identity: [],
            key: key, allowUnderscoreHeaders: allowUnderscores
        )
    }

    // MARK: The per-header decision

    @Test(arguments: [
        "X_Auth_Subject", "x_auth_scopes", "X-Auth_Provider", "X_Forwarded_For", "x_forwarded_proto", "X-Forwarded_Host",
        "X_Real_IP", "Transfer_Encoding", "Content_Length", "Keep_Alive", "Proxy_Connection", "Proxy_Authorization",
        "Sec_WebSocket_Key", "Sec_WebSocket_Version", "sec_websocket_protocol", "Sec_WebSocket_Extensions",
        "X-AUTH-SUBJECT", "x-forwarded-anything", "FORWARDED", "Host", "Upgrade", "Connection", "TE", "Trailer",
    ])
    func proxyManagedNamesAreDroppedEvenWhenUnderscoresAreAllowed(_ name: String) {
        for allow in [false, true] {
            #expect(ForwardedRequest.action(forHeader: name, edits: Self.edits(allowUnderscores: allow), connectionNamed: []) == .drop, "\(name) allow=\(allow)")
        }
    }

    @Test func underscoreNamesAreDroppedByDefaultAndForwardedOnOptOut() {
        #expect(ForwardedRequest.action(forHeader: "X_Custom", edits: Self.edits(), connectionNamed: []) == .drop)
        #expect(ForwardedRequest.action(forHeader: "X_Custom", edits: Self.edits(allowUnderscores: true), connectionNamed: []) == .forward)
        #expect(ForwardedRequest.action(forHeader: "X-Custom", edits: Self.edits(), connectionNamed: []) == .forward)
    }

    @Test func editedHeadersAndTheirAliases() {
        let consuming = Self.edits(dropAuthorization: true, subprotocols: ["chat"], dropCookies: ["session"], key: "k")
        #expect(ForwardedRequest.action(forHeader: "AUTHORIZATION", edits: consuming, connectionNamed: []) == .drop)
        #expect(ForwardedRequest.action(forHeader: "Sec-WebSocket-Protocol", edits: consuming, connectionNamed: []) == .drop)
        #expect(ForwardedRequest.action(forHeader: "sec-websocket-key", edits: consuming, connectionNamed: []) == .drop)
        #expect(ForwardedRequest.action(forHeader: "Sec-WebSocket-Version", edits: consuming, connectionNamed: []) == .drop)
        #expect(ForwardedRequest.action(forHeader: "Cookie", edits: consuming, connectionNamed: []) == .filterCookies)
        let plain = Self.edits()
        #expect(ForwardedRequest.action(forHeader: "Authorization", edits: plain, connectionNamed: []) == .forward)
        #expect(ForwardedRequest.action(forHeader: "Sec-WebSocket-Protocol", edits: plain, connectionNamed: []) == .forward)
        #expect(ForwardedRequest.action(forHeader: "Sec-WebSocket-Key", edits: plain, connectionNamed: []) == .forward)
        #expect(ForwardedRequest.action(forHeader: "Cookie", edits: plain, connectionNamed: []) == .forward)
        // A header the client's Connection names is hop-by-hop under any spelling.
        #expect(ForwardedRequest.action(forHeader: "X_Trace_Hop", edits: Self.edits(allowUnderscores: true), connectionNamed: ["x-trace-hop"]) == .drop)
        #expect(ForwardedRequest.action(forHeader: "x-trace-hop", edits: plain, connectionNamed: ["x-trace-hop"]) == .drop)
    }

    @Test func connectionNamesAreFolded() {
        let headers = HTTPHeaders([("Connection", "Upgrade, X_Trace_Hop, keep-alive"), ("Connection", "Sec-WebSocket-Key")])
        #expect(ForwardedRequest.connectionNamed(headers) == ["x-trace-hop", "keep-alive"] as Set)
    }

    // MARK: Over the wire

    static let spoofed: [(String, String)] = [
        ("X_Auth_Subject", "admin"), ("X_Auth_Scopes", "everything"), ("X-Auth_Provider", "root"),
        ("X_Forwarded_For", "10.9.8.7"), ("X_Forwarded_Proto", "https"), ("X_Forwarded_Host", "evil.example"),
        ("X_Real_IP", "10.9.8.7"), ("Sec_WebSocket_Key", "c3Bvb2ZlZCBrZXkgMTIzNA=="), ("Sec_WebSocket_Protocol", "bearer.spoofed"),
        ("Content_Length", "12"), ("Transfer_Encoding", "chunked"), ("X_Custom", "kept-on-opt-out"),
    ]

    static func config(backendPort: Int, fixture: SecurityFixture) -> String {
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
            algorithms: [HS256]
            secret_env: \(fixture.secretVariable)
        routes:
          - name: strict
            path: "/strict"
            backend: app
            origins: ["*"]
            auth: { providers: [main] }
          - name: lenient
            path: "/lenient"
            backend: app
            origins: ["*"]
            allow_underscore_headers: true
            auth: { providers: [main] }
          - name: open
            path: "/open"
            backend: app
            origins: ["*"]
        """
    }

    /// Checks what the backend got: every proxy-managed header once, with the proxy's value; no spoofed copy.
    func expectClean(_ request: TestRequestHead, allowed: Bool, authenticated: Bool) {
        let names = request.headers.map { Self.folded($0.0) }
        for managed in ["x-auth-subject", "x-auth-scopes", "x-auth-provider", "x-forwarded-for", "x-forwarded-proto",
                        "x-forwarded-host", "sec-websocket-key", "host", "upgrade", "connection"] {
            #expect(names.filter { $0 == managed }.count <= 1, "\(managed) appears more than once: \(request.headers)")
        }
        for absent in ["x-real-ip", "content-length", "transfer-encoding", "sec-websocket-protocol"] {
            #expect(!names.contains(absent), "\(absent) reached the backend: \(request.headers)")
        }
        let values = request.headers.map(\.1)
        for value in ["admin", "everything", "root", "10.9.8.7", "evil.example", "bearer.spoofed", "c3Bvb2ZlZCBrZXkgMTIzNA=="] {
            #expect(!values.contains(value), "spoofed value \(value) reached the backend")
        }
        #expect(request.header("x-forwarded-for") == "127.0.0.1")
        if authenticated {
            #expect(request.headers("x-auth-subject") == ["alice"])
            #expect(request.headers("x-auth-provider") == ["main"])
        }
        if allowed {
            #expect(request.headers("x_custom") == ["kept-on-opt-out"])
        } else {
            #expect(!request.headers.contains { $0.0.contains("_") }, "underscore header forwarded: \(request.headers)")
        }
    }

    func withProxy(_ body: (TestProxy, RecordingBackend, String) async throws -> Void) async throws {
        let fixture = try SecurityFixture.make()
        let token = try await fixture.keys.sign(.valid(sub: "alice"), algorithm: "HS256")
        try await RecordingBackend.with { backend in
            try await TestProxy.with(Self.config(backendPort: backend.port, fixture: fixture), file: fixture.file) { proxy in
                try await body(proxy, backend, token)
            }
        }
    }

    @Test(arguments: ["/strict", "/lenient", "/open"])
    func http1SpoofedHeadersNeverReachTheBackend(_ path: String) async throws {
        try await self.withProxy { proxy, backend, token in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            let auth = path == "/open" ? [] : [("Authorization", "Bearer \(token)")]
            try await client.sendUpgrade(path: path, extra: Self.spoofed + auth)
            #expect(try await client.readHead().status == 101)
            let request = try #require(backend.received.last)
            self.expectClean(request, allowed: path == "/lenient", authenticated: path != "/open")
            await client.close()
        }
    }

    @Test(arguments: ["/strict", "/lenient", "/open"])
    func http2SpoofedHeadersNeverReachTheBackend(_ path: String) async throws {
        try await self.withProxy { proxy, backend, token in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let auth = path == "/open" ? [] : [("authorization", "Bearer \(token)")]
            // HTTP/2 field names are lower case; the proxy sends a fresh key of its own.
            let spoofed = Self.spoofed.map { ($0.0.lowercased(), $0.1) }
            let stream = try await client.openStream(path: path, extra: spoofed + auth)
            #expect(try await stream.status() == 200)
            let request = try #require(backend.received.last)
            self.expectClean(request, allowed: path == "/lenient", authenticated: path != "/open")
            #expect(request.headers("sec-websocket-version") == ["13"])
            await stream.reset()
            await client.close()
        }
    }

    @Test func optOutIsAConfigKeyAndTyposAreErrors() throws {
        let fixture = try SecurityFixture.make()
        let yaml = Self.config(backendPort: 9, fixture: fixture)
        let config = try ProxyConfig.parse(yaml: yaml, file: fixture.file)
        #expect(config.routes.map(\.allowUnderscoreHeaders) == [false, true, false])
        let typo = yaml.replacingOccurrences(of: "allow_underscore_headers:", with: "allow_underscores_headers:")
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: typo, file: fixture.file) }
    }
}
