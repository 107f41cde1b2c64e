import NIOCore
import Testing
@testable import Gatehouse

/// Every refusal of the HTTP/1.1 handshake, driven over a real socket.
@Suite("Handshake refusals")
struct HandshakeRefusalTests {
    static let config = TestConfig.echo(
        route: """
              - name: chat
                host: "chat.example"
                path: "/ws/*"
                backend: demo
                origins: ["*"]
            """,
        extraTop: """
            defaults:
              limits:
                max_head_bytes: 2KiB
            """
    )

    /// Sends raw request text and returns the refusal's status, headers and body.
    func refusal(_ request: String, proxy: TestProxy) async throws -> (TestResponseHead, String) {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        defer { Task { await client.close() } }
        try await client.send(request)
        let (head, body) = try await client.readResponse()
        // The proxy closes after a refusal.
        _ = try await client.waitForClose()
        return (head, body)
    }

    @Test func unknownPathIs404() async throws {
        try await TestProxy.with(Self.config) { proxy in
            let (head, body) = try await self.refusal(TestClient.upgradeRequest(path: "/nope"), proxy: proxy)
            #expect(head.status == 404)
            #expect(body == "no route for this host and path\n")
            #expect(head.header("connection") == "close")
        }
    }

    @Test func hostRoutingIs404ForAnotherHost() async throws {
        try await TestProxy.with(Self.config) { proxy in
            let (wrongHost, _) = try await self.refusal(TestClient.upgradeRequest(path: "/ws/room", host: "other.example"), proxy: proxy)
            #expect(wrongHost.status == 404)
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/room", host: "CHAT.example:8080")
            #expect(try await client.readHead().status == 101)
            await client.close()
        }
    }

    @Test func plainGetIs426WithVersionHeader() async throws {
        try await TestProxy.with(Self.config) { proxy in
            let (head, body) = try await self.refusal("GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n", proxy: proxy)
            #expect(head.status == 426)
            #expect(head.header("sec-websocket-version") == "13")
            #expect(body.contains("only accepts WebSocket upgrades"))
        }
    }

    @Test func wrongWebSocketVersionIs426() async throws {
        try await TestProxy.with(Self.config) { proxy in
            let request = TestClient.upgradeRequest(path: "/echo").replacingOccurrences(of: "Sec-WebSocket-Version: 13", with: "Sec-WebSocket-Version: 8")
            let (head, body) = try await self.refusal(request, proxy: proxy)
            #expect(head.status == 426)
            #expect(head.header("sec-websocket-version") == "13")
            #expect(body == "Sec-WebSocket-Version 13 is required\n")
        }
    }

    @Test(arguments: [
        ("missing key", TestClient.upgradeRequest(path: "/echo").replacingOccurrences(of: "Sec-WebSocket-Key", with: "X-Nothing"), "missing Sec-WebSocket-Key"),
        ("short key", TestClient.upgradeRequest(path: "/echo", key: "c2hvcnQ="), "Sec-WebSocket-Key must be 16 bytes in base64"),
        ("POST", TestClient.upgradeRequest(path: "/echo").replacingOccurrences(of: "GET ", with: "POST "), "a WebSocket upgrade must use GET"),
        ("HTTP/1.0", TestClient.upgradeRequest(path: "/echo").replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0"), "HTTP/1.1 is required for a WebSocket upgrade"),
        ("body", TestClient.upgradeRequest(path: "/echo", extra: [("Content-Length", "5")]) + "hello", "a WebSocket upgrade request must not carry a body"),
        ("chunked", TestClient.upgradeRequest(path: "/echo", extra: [("Transfer-Encoding", "chunked")]) + "0\r\n\r\n", "a WebSocket upgrade request must not use Transfer-Encoding"),
        ("no host", "GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", "missing Host header"),
        ("dot segments", TestClient.upgradeRequest(path: "/ws/../admin"), "the request path must not contain '.' or '..' segments"),
        ("garbage", "HELLO\r\n\r\n", "malformed HTTP request"),
    ])
    func malformedRequestsAre400(_ name: String, _ request: String, _ reason: String) async throws {
        try await TestProxy.with(Self.config) { proxy in
            let (head, body) = try await self.refusal(request, proxy: proxy)
            #expect(head.status == 400, "\(name)")
            #expect(body == reason + "\n", "\(name)")
        }
    }

    @Test func oversizedHeadIs431() async throws {
        try await TestProxy.with(Self.config) { proxy in
            let big = String(repeating: "a", count: 3000)
            let (head, body) = try await self.refusal(TestClient.upgradeRequest(path: "/echo", extra: [("X-Big", big)]), proxy: proxy)
            #expect(head.status == 431)
            #expect(body == "request head larger than 2048 bytes\n")
            // A head that never ends is cut off once it passes the limit, without waiting for its end.
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.send("GET /echo HTTP/1.1\r\nHost: x\r\nX-Endless: " + String(repeating: "b", count: 4096))
            let (endless, _) = try await client.readResponse()
            #expect(endless.status == 431)
            await client.close()
        }
    }

    @Test func slowHeadIsCutOffWithoutBlockingOthers() async throws {
        let config = Self.config.replacingOccurrences(of: "max_head_bytes: 2KiB", with: "max_head_bytes: 2KiB\n    handshake_timeout: 3s")
        try await TestProxy.with(config) { proxy in
            let slow = try await TestClient.connect(port: try proxy.port("plain"))
            try await slow.send("GET /echo HTTP/1.1\r\nHost: x\r\n")
            // Another client is served while the slow one dawdles.
            let fast = try await TestClient.connect(port: try proxy.port("plain"))
            try await fast.sendUpgrade(path: "/echo")
            #expect(try await fast.readHead().status == 101)
            let (head, _) = try await slow.readResponse(timeout: .seconds(5))
            #expect(head.status == 408)
            _ = try await slow.waitForClose()
            await fast.close()
        }
    }

    @Test func refusalsAreLoggedWithStatusAndReason() async throws {
        try await TestProxy.with(Self.config) { proxy in
            _ = try await self.refusal(TestClient.upgradeRequest(path: "/nope?access_token=secret-token"), proxy: proxy)
            let line = try #require(proxy.logs.all.first { $0.contains("handshake refused") })
            #expect(line.contains("status=404"))
            #expect(line.contains("path=/nope"))
            #expect(!line.contains("secret-token"))
        }
    }
}
