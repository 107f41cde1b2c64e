import Foundation
import NIOCore
import Testing
@testable import Gatehouse

/// One normalisation of the request target before routing, and the backend gets exactly what was routed: no
/// spelling of a path may be routed as one path and read by the backend as another.
@Suite("Path normalisation")
struct PathNormalizationTests {
    // MARK: The normaliser

    /// Input → normalised target, or nil when it is refused with 400.
    @Test(arguments: [
        // Escapes of characters a path holds raw are decoded; the others stay escaped in upper-case hex.
        ("/%70rivate/x", "/private/x"),
        ("/%7Eu/x", "/~u/x"),
        ("/%41%5a%30%2D%5F%2e", "/AZ0-_."),
        ("/a%2B%3a%40%21%24%26%27%28%29%2A%2C%3D", "/a+:@!$&'()*,="),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/%F0%9F%98%80", "/%F0%9F%98%80"),
        ("/a%20b%3f%23%7c", "/a%20b%3F%23%7C"),
        // Raw characters that must be escaped are escaped.
        ("/a|b[c]^{d}`\"<>", "/a%7Cb%5Bc%5D%5E%7Bd%7D%60%22%3C%3E"),
        // Runs of "/" are merged.
        ("//private/x", "/private/x"),
        ("/private///x//", "/private/x/"),
        ("///", "/"),
        // Case is kept: paths are case-sensitive.
        ("/PRIVATE/x", "/PRIVATE/x"),
        // Dots that are not a whole segment are data.
        ("/a/.b/c../...", "/a/.b/c../..."),
        // The query is kept exactly as sent.
        ("/%7Eq?a=%2F..;b&c=%zz//", "/~q?a=%2F..;b&c=%zz//"),
        ("/q?", "/q?"),
        // Refused: double encoding, encoded separators, controls, path parameters, dot segments.
        ("/%2570rivate/x", nil),
        ("/private%2Fx", nil), ("/private%2fx", nil), ("/private%5Cx", nil), ("/private\\x", nil),
        ("/a%00", nil), ("/a%0A", nil), ("/a%7F", nil),
        ("/private;a/x", nil), ("/private%3Ba/x", nil), ("/x/..;/private/x", nil), ("/x/.;/y", nil),
        ("/x/../private/x", nil), ("/x/%2e%2e/private/x", nil), ("/x/.%2E/y", nil), ("/x/./y", nil), ("/x/..", nil),
        ("/x/%2e", nil), ("/..", nil),
        // Refused: malformed escapes, bytes that are not UTF-8 once decoded (overlong "." included).
        ("/a%", nil), ("/a%4", nil), ("/a%4g", nil), ("/a%%41", nil),
        ("/%C0%AE%C0%AE/x", nil), ("/%C3", nil), ("/%C3a", nil), ("/%ED%A0%80", nil), ("/%F4%90%80%80", nil), ("/%FF", nil),
        // Refused: not origin-form, raw bytes outside visible ASCII, fragments.
        ("http://evil/ws", nil), ("*", nil), ("", nil), ("private/x", nil),
        ("/a b", nil), ("/a\t", nil), ("/é", nil), ("/a\u{7F}", nil), ("/q?a b", nil), ("/q?é", nil),
        ("/a#f", nil), ("/q?a#f", nil),
    ] as [(String, String?)])
    func normalises(_ input: String, _ expected: String?) {
        switch RequestTarget.normalize(input) {
        case .success(let output):
            #expect(output == expected, "\(input) was accepted as \(output)")
        case .failure(let refusal):
            #expect(expected == nil, "\(input) was refused: \(refusal.reason)")
            #expect(refusal.status == .badRequest)
        }
    }

    @Test func lengthIsBounded() {
        let longest = "/" + String(repeating: "a", count: RequestTarget.maxBytes - 1)
        #expect(RequestTarget.normalize(longest) == .success(longest))
        #expect(throws: HandshakeRefusal.self) { try RequestTarget.normalize(longest + "a").get() }
    }

    /// Random targets built from the pieces attacks are made of: every accepted output is a fixed point, holds no
    /// form a backend could read two ways, and names the same path as the input for a backend that decodes
    /// every escape.
    @Test func acceptedTargetsAreCanonical() {
        let pieces = [
            "/", "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%25", "%3b", ";", "\\", "a", "P", "%70", "%7e",
            "~", "%41", "%c3", "%A9", "%C3%A9", "|", "%7C", "%3F", "%20", "+", "%2B", ":", "@", "%", "%0", "%00", "?", "=",
            "&", "#", "é", " ",
        ]
        var generator = SeededGenerator(seed: 11)
        var accepted = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 1...8, using: &generator)
            let input = "/" + (0..<count).map { _ in pieces.randomElement(using: &generator) ?? "" }.joined()
            guard case .success(let output) = RequestTarget.normalize(input) else { continue }
            accepted += 1
            #expect(RequestTarget.normalize(output) == .success(output), "not idempotent: \(input) -> \(output)")
            let question = output.firstIndex(of: "?") ?? output.endIndex
            let path = String(output[..<question])
            #expect(output[question...] == input[(input.firstIndex(of: "?") ?? input.endIndex)...], "query changed: \(input)")
            #expect(path.hasPrefix("/") && !path.contains("//"), "\(input) -> \(output)")
            let segments = path.split(separator: "/", omittingEmptySubsequences: false)
            #expect(!segments.contains(".") && !segments.contains(".."), "\(input) -> \(output)")
            for forbidden in [";", "\\", "#", "%2F", "%2f", "%5C", "%5c", "%25", "%3B", "%00"] {
                #expect(!path.contains(forbidden), "\(input) -> \(output) holds \(forbidden)")
            }
            #expect(PathPattern(parsing: path) != nil, "\(path) cannot be written as a route")
            #expect(Self.decodedPath(input) == Self.decodedPath(output), "a decoding backend reads \(input) and \(output) apart")
        }
        #expect(accepted > 1000)
    }

    /// The path as a backend that decodes every escape and merges slashes reads it.
    static func decodedPath(_ target: String) -> [UInt8] {
        let path = Array(target.utf8.prefix { $0 != UInt8(ascii: "?") })
        var bytes: [UInt8] = []
        var index = 0
        while index < path.count {
            if path[index] == UInt8(ascii: "%"), index + 2 < path.count, let value = UInt8(String(decoding: path[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index += 3
            } else {
                if !(path[index] == UInt8(ascii: "/") && bytes.last == UInt8(ascii: "/")) { bytes.append(path[index]) }
                index += 1
            }
        }
        return bytes
    }

    @Test func routePathsMustBeNormalised() {
        #expect(PathPattern(parsing: "/private/*") == .prefix("/private/"))
        #expect(PathPattern(parsing: "/*") == .prefix("/"))
        #expect(PathPattern(parsing: "/caf%C3%A9") == .exact("/caf%C3%A9"))
        for pattern in ["//private/*", "/%70rivate/*", "/caf%c3%a9", "/a;b", "/a/../b", "/a/./*", "/a%2Fb", "/a|b", "/a b", "/a%25"] {
            #expect(PathPattern(parsing: pattern) == nil, "\(pattern)")
        }
        #expect(PathPattern.problem(with: "//%70rivate/*") == "path '//%70rivate/*' can never match: request paths are normalised first, write '/private/*'")
        #expect(PathPattern.problem(with: "/a;b") == "path '/a;b' can never match: the request path must not contain ';' (path parameters)")
        #expect(PathPattern.problem(with: "/a?b") == "path must not hold a query or fragment, found '/a?b'")
        #expect(PathPattern.problem(with: "ws/*") == "path must start with '/' (exact) or end with '/*' (prefix), found 'ws/*'")
        #expect(throws: ConfigError.self) {
            try ProxyConfig.parse(
                yaml: TestConfig.echo(route: "  - { name: odd, path: \"//private/*\", backend: demo, origins: [\"*\"] }"),
                file: "test.yaml"
            )
        }
    }

    // MARK: End to end

    /// What a target should come to: refused, routed to the token-protected route, or routed to the open catch-all
    /// and forwarded as `target`.
    enum Expected: Sendable {
        case refused
        case privateRoute
        case open(String)
    }

    static func config(_ fixture: SecurityFixture, backendPort: Int) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
          - name: secure
            bind: "127.0.0.1:0"
            tls:
              self_signed: true
        backends:
          - name: app
            servers: ["127.0.0.1:\(backendPort)"]
        auth:
          - name: bots
            type: static
            tokens_file: tokens.txt
        routes:
          - name: private
            path: "/private/*"
            backend: app
            origins: ["*"]
            auth: { providers: [bots], token_sources: [header] }
          - name: open
            path: "/*"
            backend: app
            origins: ["*"]
        """
    }

    static let attacks: [(String, Expected)] = [
        ("/private/x", .privateRoute),
        ("/%70rivate/x", .privateRoute),
        ("//private/x", .privateRoute),
        ("/private//x", .privateRoute),
        ("/%70%72%69%76%61%74%65/x", .privateRoute),
        ("/%2570rivate/x", .refused),
        ("/private;a/x", .refused),
        ("/private%3Ba/x", .refused),
        ("/x/..;/private/x", .refused),
        ("/x/../private/x", .refused),
        ("/x/%2e%2e/private/x", .refused),
        ("/x/.%2E/private/x", .refused),
        ("/x%2F..%2Fprivate/x", .refused),
        ("/x/..%5Cprivate/x", .refused),
        ("/%C0%AE%C0%AE/private/x", .refused),
        // Paths are case-sensitive: a case variant is another path, forwarded as sent.
        ("/PRIVATE/x", .open("/PRIVATE/x")),
        ("/%7Eu/x", .open("/~u/x")),
        ("//%7eu//x?a=%2F..;b", .open("/~u/x?a=%2F..;b")),
        ("/a|b", .open("/a%7Cb")),
    ]

    func withProxy(_ body: (TestProxy, RecordingBackend) async throws -> Void) async throws {
        let fixture = try SecurityFixture.make()
        try await RecordingBackend.with { backend in
            try await TestProxy.with(Self.config(fixture, backendPort: backend.port), file: fixture.file) { proxy in
                try await body(proxy, backend)
            }
        }
    }

    @Test func http1RoutesAndForwardsTheNormalisedTarget() async throws {
        try await self.withProxy { proxy, backend in
            for (target, expected) in Self.attacks {
                let before = backend.received.count
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: target)
                let (head, body) = try await client.readResponse()
                switch expected {
                case .refused:
                    #expect(head.status == 400, "\(target)")
                    #expect(body.contains("request path") || body.contains("request target"), "\(target) refused for another reason: \(body)")
                case .privateRoute:
                    #expect(head.status == 401, "\(target) did not reach the protected route")
                case .open(let forwarded):
                    #expect(head.status == 101, "\(target)")
                    #expect(backend.received.dropFirst(before).last?.target == forwarded, "\(target)")
                }
                if head.status != 101 { #expect(backend.received.count == before, "\(target) reached the backend") }
                await client.close()
            }
            // With the token, the protected route forwards the path it routed, not the spelling the client sent.
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "//%70rivate//%7Eu?x=1", extra: [("Authorization", "Bearer \(SecurityFixture.botToken)")])
            #expect(try await client.readHead().status == 101)
            #expect(backend.received.last?.target == "/private/~u?x=1")
            await client.close()
        }
    }

    @Test func http2RoutesAndForwardsTheNormalisedTarget() async throws {
        try await self.withProxy { proxy, backend in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            for (target, expected) in Self.attacks {
                let before = backend.received.count
                let stream = try await client.openStream(path: target)
                let status = try await stream.status()
                switch expected {
                case .refused:
                    #expect(status == 400, "\(target)")
                case .privateRoute:
                    #expect(status == 401, "\(target) did not reach the protected route")
                case .open(let forwarded):
                    #expect(status == 200, "\(target)")
                    #expect(backend.received.dropFirst(before).last?.target == forwarded, "\(target)")
                }
                if status != 200 { #expect(backend.received.count == before, "\(target) reached the backend") }
                await stream.reset()
            }
            await client.close()
        }
    }
}
