import NIOCore
import NIOPosix
import Testing
@testable import Gatehouse

/// The backend leg: forwarded request, failover, refusals and failures.
@Suite("Backends")
struct BackendTests {
    func config(servers: [Int], connectTimeout: String = "2s", responseTimeout: String = "10s") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: app
            servers: [\(servers.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", "))]
            connect_timeout: \(connectTimeout)
            response_timeout: \(responseTimeout)
        routes:
          - name: app
            path: "/ws/*"
            backend: app
            origins: ["*"]
        """
    }

    /// A port with nothing listening on it.
    func closedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    @Test func forwardedRequestHeaders() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [backend.port])) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/room?x=1", host: "app.example:8080", extra: [
                ("X-Forwarded-For", "6.6.6.6"), ("x-forwarded-proto", "https"), ("X-Forwarded-Host", "evil"),
                ("Forwarded", "for=6.6.6.6"), ("Keep-Alive", "timeout=5"), ("Connection", "Upgrade, X-Hop"),
                ("X-Hop", "drop me"), ("X-Keep", "keep me"), ("Sec-WebSocket-Protocol", "chat, superchat"),
                ("Sec-WebSocket-Extensions", "permessage-deflate"), ("X-Auth-Subject", "admin"),
            ])
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            #expect(request.method == "GET")
            #expect(request.target == "/ws/room?x=1")
            #expect(request.headers("x-forwarded-for") == ["127.0.0.1"])
            #expect(request.headers("x-forwarded-proto") == ["http"])
            #expect(request.headers("x-forwarded-host") == ["app.example:8080"])
            #expect(request.header("host") == "app.example:8080")
            #expect(request.header("forwarded") == nil)
            #expect(request.header("keep-alive") == nil)
            #expect(request.header("x-hop") == nil)
            #expect(request.header("x-auth-subject") == nil)
            #expect(request.header("x-keep") == "keep me")
            #expect(request.header("upgrade") == "websocket")
            #expect(request.header("connection") == "Upgrade")
            #expect(request.header("sec-websocket-version") == "13")
            #expect(request.header("sec-websocket-key") != nil)
            #expect(request.header("sec-websocket-protocol") == "chat, superchat")
            #expect(request.header("sec-websocket-extensions") == "permessage-deflate")
            try await upstream.accept(request, extra: [("Sec-WebSocket-Protocol", "chat"), ("Set-Cookie", "a=b")])
            let head = try await client.readHead()
            #expect(head.status == 101)
            #expect(head.header("sec-websocket-protocol") == "chat")
            #expect(head.header("set-cookie") == "a=b")
            #expect(head.header("sec-websocket-accept") == TestClient.acceptValue(request.header("sec-websocket-key") ?? ""))
            await client.close()
        }
        await backend.stop()
    }

    @Test func backendRefusalIsRelayed() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [backend.port])) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let upstream = try await backend.accept()
            _ = try await upstream.readRequestHead()
            try await upstream.send("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nX-App: yes\r\n\r\nnot you\r\n")
            let (head, body) = try await client.readResponse()
            #expect(head.status == 403)
            #expect(body == "not you\r\n")
            #expect(head.header("x-app") == "yes")
            _ = try await client.waitForClose()
        }
        await backend.stop()
    }

    @Test func backendDownIs502AfterTryingEveryServer() async throws {
        let down1 = try await self.closedPort()
        let down2 = try await self.closedPort()
        try await TestProxy.with(self.config(servers: [down1, down2])) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let (head, body) = try await client.readResponse()
            #expect(head.status == 502)
            #expect(body == "backend unavailable\n")
            // Both servers were tried.
            #expect(proxy.logs.all.filter { $0.contains("backend attempt failed") }.count == 2)
        }
    }

    @Test func failoverReachesALiveServer() async throws {
        let down = try await self.closedPort()
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [down, backend.port])) { proxy in
            for _ in 0..<2 {  // round robin starts at each server once: both requests must land on the live one
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: "/ws/x")
                let upstream = try await backend.accept()
                try await upstream.accept(try await upstream.readRequestHead())
                #expect(try await client.readHead().status == 101)
                await client.close()
            }
        }
        await backend.stop()
    }

    @Test func unansweredUpgradeIs504() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [backend.port], responseTimeout: "300ms")) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let upstream = try await backend.accept()
            _ = try await upstream.readRequestHead()
            let (head, body) = try await client.readResponse()
            #expect(head.status == 504)
            #expect(body == "backend did not answer the upgrade in time\n")
        }
        await backend.stop()
    }

    @Test func connectTimeoutIs504() async throws {
        // A listener that never accepts, with its accept queue already full: further SYNs are dropped, so a
        // connect to it hangs until the proxy's timeout (loopback only).
        let group = MultiThreadedEventLoopGroup.singleton
        let stuck = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1)
            .serverChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = stuck.localAddress?.port ?? 0
        var fillers: [Channel] = []
        for _ in 0..<4 {
            if let channel = try? await ClientBootstrap(group: group).connectTimeout(.milliseconds(200)).connect(host: "127.0.0.1", port: port).get() {
                fillers.append(channel)
            }
        }
        try await TestProxy.with(self.config(servers: [port], connectTimeout: "300ms")) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let (head, body) = try await client.readResponse()
            #expect(head.status == 504)
            #expect(body == "backend connect timed out\n")
        }
        for channel in fillers { try? await channel.close() }
        try? await stuck.close()
    }

    @Test(arguments: [
        ("not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"),
        ("wrong accept", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"),
        ("no upgrade header", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n"),
    ])
    func malformedBackendAnswerIs502(_ name: String, _ answer: String) async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [backend.port])) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let upstream = try await backend.accept()
            _ = try await upstream.readRequestHead()
            try await upstream.send(answer)
            let (head, body) = try await client.readResponse()
            #expect(head.status == 502, "\(name)")
            #expect(body.hasPrefix("invalid backend answer"), "\(name): \(body)")
        }
        await backend.stop()
    }

    @Test func bytesRightAfterThe101AreRelayed() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [backend.port])) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            let key = request.header("sec-websocket-key") ?? ""
            // The 101 and a first frame in one write.
            let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(TestClient.acceptValue(key))\r\n\r\n"
            try await upstream.send(Array(answer.utf8) + TestFrame.encode(opcode: TestFrame.text, payload: Array("welcome".utf8), mask: nil))
            #expect(try await client.readHead().status == 101)
            #expect(try await client.readFrame().payload == Array("welcome".utf8))
            await client.close()
        }
        await backend.stop()
    }

    @Test func clientFINWithoutCloseGivesTheBackend1001() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [backend.port])) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let upstream = try await backend.accept()
            try await upstream.accept(try await upstream.readRequestHead())
            #expect(try await client.readHead().status == 101)
            try await client.shutdownOutput()
            let close = try await upstream.readFrame()
            #expect(close.opcode == TestFrame.close)
            #expect(close.closeCode == 1001)
            #expect(close.masked)
            try await upstream.send(TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(1001), mask: nil))
            _ = try await upstream.waitForClose()
            _ = try await client.waitForClose()
        }
        await backend.stop()
    }

    @Test func backendCloseHandshakeReachesTheClientAndBothTCPClose() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config(servers: [backend.port])) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws/x")
            let upstream = try await backend.accept()
            try await upstream.accept(try await upstream.readRequestHead())
            #expect(try await client.readHead().status == 101)
            try await upstream.send(TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(4001, "bye"), mask: nil))
            let close = try await client.readFrame()
            #expect(close.closeCode == 4001)
            #expect(close.closeReason == "bye")
            try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(4001))
            let answer = try await upstream.readFrame()
            #expect(answer.closeCode == 4001)
            // The handshake is complete: the proxy closes both TCP connections.
            _ = try await client.waitForClose()
            _ = try await upstream.waitForClose()
        }
        await backend.stop()
    }
}
