import Crypto
import Foundation
import NIOCore
import NIOHTTP2
import Testing
@testable import Gatehouse

/// WebSockets over HTTP/2 (RFC 8441) on the client side, relayed to HTTP/1.1 backends.
@Suite("HTTP/2 WebSockets")
struct HTTP2Tests {
    static func config(backendPort: Int? = nil, extraRoutes: String = "") -> String {
        """
        listeners:
          - name: secure
            bind: "127.0.0.1:0"
            tls:
              self_signed: true
            max_concurrent_streams: 50
        backends:
          - name: demo
            builtin: echo
          - name: scripted
            servers: ["127.0.0.1:\(backendPort ?? 9)"]
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["https://app.example"]
          - name: scripted
            path: "/scripted"
            backend: scripted
            origins: ["*"]
        \(extraRoutes)
        """
    }

    @Test func serverAnnouncesExtendedConnect() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            #expect(client.serverSetting(.enableConnectProtocol) == 1)
            #expect(client.serverSetting(.maxConcurrentStreams) == 50)
            await client.close()
        }
    }

    @Test func severalWebSocketsEchoOnOneConnection() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            var streams: [TestH2Stream] = []
            for _ in 0..<4 {
                let stream = try await client.openStream(path: "/echo")
                #expect(try await stream.status() == 200)
                streams.append(stream)
            }
            for (index, stream) in streams.enumerated() {
                for size in [0, 125, 70_000, 1 << 20] {
                    let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ index) }
                    try await stream.sendFrame(opcode: TestFrame.binary, payload: payload)
                    let echoed = try await stream.readMessage()
                    #expect(SHA256.hash(data: echoed) == SHA256.hash(data: payload), "stream \(index) size \(size)")
                }
            }
            let live = await proxy.server.connections()
            #expect(live.count == 4)
            #expect(live.allSatisfy { $0.transport == "h2" && $0.route == "echo" })
            // A close handshake ends the stream with END_STREAM.
            try await streams[0].sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
            #expect(try await streams[0].readFrame().closeCode == 1000)
            try await streams[0].send([], endStream: true)
            try await streams[0].waitForEnd()
            #expect(streams[0].collector.reset == nil)
            let line = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(line.contains("transport=h2"))
            #expect(line.contains("close_code=1000"))
            // The siblings are unaffected.
            try await streams[1].sendFrame(opcode: TestFrame.text, payload: Array("still".utf8))
            #expect(try await streams[1].readMessage() == Array("still".utf8))
            await client.close()
        }
    }

    @Test func refusalsUseTheSameStatusesOverHTTP2() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let wrongOrigin = try await client.openStream(path: "/echo", extra: [("origin", "https://evil.example")])
            #expect(try await wrongOrigin.status() == 403)
            let body = try await wrongOrigin.collector.bytes.wait(timeout: .seconds(5), what: "body") { buffer, closed in
                closed ? buffer.readString(length: buffer.readableBytes) : nil
            }
            #expect(body == "origin not allowed\n")
            let missing = try await client.openStream(path: "/nowhere", extra: [("origin", "https://app.example")])
            #expect(try await missing.status() == 404)
            let plainGet = try await client.openStream(path: "/echo", method: "GET", protocolName: nil, endStream: true)
            #expect(try await plainGet.status() == 426)
            let badVersion = try await client.openStream(path: "/echo", extra: [("origin", "https://app.example"), ("sec-websocket-version", "8")])
            #expect(try await badVersion.status() == 426)
            // Refusals do not hurt the connection: a good stream still works.
            let good = try await client.openStream(path: "/echo", extra: [("origin", "https://app.example")])
            #expect(try await good.status() == 200)
            await client.close()
        }
    }

    @Test func tokenRefusalOverHTTP2() async throws {
        let fixture = try SecurityFixture.make()
        let backend = try await RecordingBackend.start()
        let yaml = fixture.config(backendPort: backend.port).replacingOccurrences(of: """
              - name: plain
                bind: "127.0.0.1:0"
            """, with: """
              - name: plain
                bind: "127.0.0.1:0"
              - name: secure
                bind: "127.0.0.1:0"
                tls: { self_signed: true }
            """)
        try await TestProxy.with(yaml, file: fixture.file) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let anonymous = try await client.openStream(path: "/secure/x")
            #expect(try await anonymous.status() == 401)
            #expect(try await anonymous.readHeaders().first(name: "www-authenticate") == "Bearer realm=\"gatehouse\"")
            let token = try await fixture.keys.sign(.valid(sub: "h2-user"), algorithm: "ES256")
            let authorized = try await client.openStream(path: "/secure/x", extra: [("sec-websocket-protocol", "bearer.\(token)")])
            #expect(try await authorized.status() == 200)
            #expect(try await authorized.readHeaders().first(name: "sec-websocket-protocol") == "bearer.\(token)")
            let request = try #require(backend.received.last)
            #expect(request.header("x-auth-subject") == "h2-user")
            #expect(request.header("sec-websocket-protocol") == nil)
            #expect(request.header("host") == "localhost")
            #expect(request.header("sec-websocket-key") != nil)
            await client.close()
        }
        await backend.stop()
    }

    @Test func aStalledStreamDoesNotStallItsSibling() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let stalled = try await client.openStream(path: "/echo", extra: [("origin", "https://app.example")])
            let sibling = try await client.openStream(path: "/echo", extra: [("origin", "https://app.example")])
            #expect(try await stalled.status() == 200)
            #expect(try await sibling.status() == 200)
            // The stalled stream stops reading: its echoes fill its flow-control window and the proxy's buffer.
            try await stalled.channel.setOption(.autoRead, value: false).get()
            let chunk = [UInt8](repeating: 7, count: 256 << 10)
            let total = 16
            let flood = Task {
                for _ in 0..<total { try await stalled.sendFrame(opcode: TestFrame.binary, payload: chunk) }
            }
            // Wait until the proxy holds back the stalled stream's backend (the stream whose client sent the flood).
            // The pause flag lives in connection snapshots, which announce no change: a bounded `eventually`.
            let paused = try await eventuallyValue("the stalled stream's backend to be paused", deadline: .seconds(30)) {
                await proxy.server.connections().first { $0.backendReadPaused }
            }
            #expect(paused.bytesFromClient > 256 << 10)
            // The sibling keeps echoing meanwhile.
            for index in 0..<5 {
                try await sibling.sendFrame(opcode: TestFrame.text, payload: Array("ping \(index)".utf8))
                #expect(try await sibling.readMessage(timeout: .seconds(10)) == Array("ping \(index)".utf8))
            }
            // Reading again, the stalled stream gets every byte.
            try await stalled.channel.setOption(.autoRead, value: true).get()
            stalled.channel.read()
            try await flood.value
            var received = 0
            for _ in 0..<total { received += try await stalled.readMessage(timeout: .seconds(60)).count }
            #expect(received == total * chunk.count)
            await client.close()
        }
    }

    @Test func streamResetReachesTheBackendAsAClose() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let stream = try await client.openStream(path: "/scripted")
            let upstream = try await backend.accept()
            try await upstream.accept(try await upstream.readRequestHead())
            #expect(try await stream.status() == 200)
            try await stream.sendFrame(opcode: TestFrame.text, payload: Array("hello".utf8))
            #expect(try await upstream.readFrame().payload == Array("hello".utf8))
            await stream.reset()
            let close = try await upstream.readFrame()
            #expect(close.opcode == TestFrame.close)
            #expect(close.closeCode == 1001)
            await client.close()
        }
        await backend.stop()
    }

    @Test func drainSendsGoAwayAndClosesEachConnectionAfterItsLastStream() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let port = try proxy.port("secure")
            let busy = try await TestH2Client.connect(port: port)
            let idle = try await TestH2Client.connect(port: port)
            let stream = try await busy.openStream(path: "/echo")
            #expect(try await stream.status() == 200)
            let streamID = try await stream.channel.getOption(HTTP2StreamChannelOptions.streamID).get()
            let drain = Task { await proxy.server.drain(timeout: .seconds(10)) }
            // The idle connection learns it may open nothing more and is closed at once.
            #expect(try await idle.waitForGoAway() == .rootStream)
            try await idle.waitForConnectionClose()
            // The busy one keeps its stream for the close handshake, then ends.
            #expect(try await busy.waitForGoAway() == streamID)
            let close = try await stream.readFrame()
            #expect(close.opcode == TestFrame.close)
            #expect(close.closeCode == 1001)
            try await stream.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1001))
            try await stream.send([], endStream: true)
            try await stream.waitForEnd()
            // Before the 10 s drain deadline: the stream's end, not the deadline, closes it (8 s: margin for load).
            try await busy.waitForConnectionClose(timeout: .seconds(8))
            await drain.value
        }
    }

    @Test func http11StillServedOnTheSameListener() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("secure"), tls: TestTLS(serverName: "localhost", alpn: ["http/1.1"]))
            try await client.sendUpgrade(path: "/echo", extra: [("Origin", "https://app.example")])
            #expect(try await client.readHead().status == 101)
            await client.close()
        }
    }
}

/// A real browser over HTTP/2.
@Suite("Chromium")
struct ChromiumTests {
    /// Chromium must be present in CI (`.ci/run` installs it and sets GATEHOUSE_REQUIRE_BROWSER); elsewhere the
    /// test runs when it is installed.
    static var browserAvailable: Bool {
        ProcessInfo.processInfo.environment["GATEHOUSE_REQUIRE_BROWSER"] == "1"
            || FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
    }

    @Test(.enabled(if: ChromiumTests.browserAvailable, "needs Debian's chromium"))
    func chromiumOpensWssOverHTTP2() async throws {
        let yaml = """
            listeners:
              - name: secure
                bind: "127.0.0.1:0"
                tls: { self_signed: true }
            backends:
              - name: demo
                builtin: echo
            routes:
              - name: echo
                path: "/echo"
                backend: demo
                origins: ["*"]
            """
        try await TestProxy.with(yaml) { proxy in
            let result = try await ExternalProcess.run(
                ["python3", ExternalProcess.peerScript("chromium_ws.py"), String(try proxy.port("secure")), "/echo"], timeout: 90
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("result=echo:hello from chromium"))
            let line = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(line.contains("transport=h2"), "\(line)")
            #expect(line.contains("close_code=1000"))
        }
    }
}
