import NIOCore
import NIOHPACK
import NIOHTTP2
import Testing
@testable import Gatehouse

/// HTTP/2's `:authority` and `:scheme` get no more trust than HTTP/1.1's `Host`: an authority that does not parse is
/// refused (never read as "no host", which a host-less route would take), and `X-Forwarded-Proto` says what the
/// listener is, whatever `:scheme` the client claims.
@Suite("Authority hardening")
struct AuthorityHardeningTests {
    /// Authorities no route may be chosen by; each was accepted by some version of the parser.
    static let malformed = [
        "host:abc", "user@host", "user@localhost:443", "localhost:\u{668}\u{660}", "localhost:99999", "localhost:000443",
        "a\\b", "local%68ost", "localhost?x", "localhost#x", "[::1", "[::1]x", "[::1]:\u{668}\u{660}", ":443", "",
    ]

    // MARK: The parser

    @Test(arguments: malformed)
    func malformedAuthorityHasNoHost(_ authority: String) {
        #expect(HostPattern.normalizedHost(fromAuthority: authority) == nil)
    }

    @Test func wellFormedAuthorities() {
        #expect(HostPattern.normalizedHost(fromAuthority: "LocalHost:443") == "localhost")
        #expect(HostPattern.normalizedHost(fromAuthority: "localhost:65535") == "localhost")
        #expect(HostPattern.normalizedHost(fromAuthority: "localhost:") == "localhost")
        #expect(HostPattern.normalizedHost(fromAuthority: "[::1]:443") == "[::1]")
        #expect(HostPattern.normalizedHost(fromAuthority: "chat.example.:8443") == "chat.example")
    }

    // MARK: End to end

    static func config(backendPort: Int) -> String {
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
        routes:
          - name: any-host
            path: "/ws"
            backend: app
            origins: ["*"]
        """
    }

    func withProxy(_ body: (TestProxy, RecordingBackend) async throws -> Void) async throws {
        try await RecordingBackend.with { backend in
            try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in try await body(proxy, backend) }
        }
    }

    @Test func http2RefusesAnAuthorityThatDoesNotParse() async throws {
        try await self.withProxy { proxy, backend in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            for authority in Self.malformed where !authority.isEmpty {
                let stream = try await client.openStreamClaiming(path: "/ws", authority: authority)
                #expect(try await stream.status() == 400, "\(authority)")
                #expect(backend.received.isEmpty, "\(authority) reached the backend")
                await stream.reset()
            }
            // The host-less route would have taken them: a well-formed authority reaches the backend.
            let stream = try await client.openStreamClaiming(path: "/ws", authority: "localhost:443")
            #expect(try await stream.status() == 200)
            #expect(backend.received.count == 1)
            await stream.reset()
            await client.close()
        }
    }

    @Test func http2ForwardedProtoIsTheListenersNotTheClaimedScheme() async throws {
        try await self.withProxy { proxy, backend in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            for scheme in ["http", "gopher", "https"] {
                let before = backend.received.count
                let stream = try await client.openStreamClaiming(path: "/ws", scheme: scheme)
                #expect(try await stream.status() == 200, "\(scheme)")
                let forwarded = backend.received.dropFirst(before).last
                #expect(forwarded?.headers("x-forwarded-proto") == ["https"], ":scheme \(scheme)")
                await stream.reset()
            }
            await client.close()
        }
    }

    @Test func http1RefusesAHostThatDoesNotParse() async throws {
        try await self.withProxy { proxy, backend in
            for host in Self.malformed where !host.isEmpty {
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: "/ws", host: host)
                let (head, body) = try await client.readResponse()
                #expect(head.status == 400, "Host: \(host)")
                #expect(body == "exactly one valid Host header is required\n", "Host: \(host)")
                #expect(backend.received.isEmpty, "Host: \(host) reached the backend")
                await client.close()
            }
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws", host: "localhost:80")
            #expect(try await client.readHead().status == 101)
            #expect(backend.received.last?.headers("x-forwarded-proto") == ["http"])
            await client.close()
        }
    }
}

extension TestH2Client {
    /// Opens an extended CONNECT stream with the given `:authority` and `:scheme` (``openStream(path:extra:method:protocolName:endStream:)``
    /// always sends `localhost` and `https`).
    func openStreamClaiming(path: String, authority: String = "localhost", scheme: String = "https") async throws -> TestH2Stream {
        let collector = H2StreamCollector(eventLoop: self.channel.eventLoop)
        let stream = try await self.multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(collector) }
        }.get()
        let headers = HPACKHeaders([
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", scheme), (":path", path), (":authority", authority),
            ("sec-websocket-version", "13"),
        ])
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
        return TestH2Stream(channel: stream, collector: collector)
    }
}
