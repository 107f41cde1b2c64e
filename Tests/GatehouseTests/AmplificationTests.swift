import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import NIOPosix
import Testing
@testable import Gatehouse

/// A client must not make the proxy do more work than it holds open itself: backend attempts end with the client
/// that asked for them, handshakes in flight and connections not yet upgraded are capped.
@Suite("Amplification and exhaustion")
struct AmplificationTests {
    /// A plain and a TLS listener, one route to a scripted backend that never has to answer (the response timeout
    /// is far longer than any wait here) and admits one connection at a time.
    static func config(backendPort: Int, limits: String = "") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
          - name: secure
            bind: "127.0.0.1:0"
            tls: { self_signed: true }
            max_concurrent_streams: 4
        defaults:
          limits:
            handshake_timeout: 30s
        \(limits)
        backends:
          - name: silent
            servers: ["127.0.0.1:\(backendPort)"]
            response_timeout: 30s
        routes:
          - name: silent
            path: "/ws"
            backend: silent
            origins: ["*"]
            limits:
              max_connections: 1
        """
    }

    /// The backend takes the upgrade and the client is spliced: the route's only slot was free.
    static func expectSecondHandshakeSucceeds(proxy: TestProxy, backend: ScriptedBackend) async throws {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        try await client.sendUpgrade(path: "/ws")
        let upstream = try await backend.accept()
        try await upstream.accept(try await upstream.readRequestHead())
        #expect(try await client.readHead().status == 101)
        await client.close()
        await upstream.close()
    }

    // MARK: Backend work ends with the client

    /// Over plain TCP and over TLS (HTTP/1.1 by ALPN fallback): reads are parked while admitting, yet the FIN is seen.
    @Test(arguments: [false, true])
    func http1ClientThatLeavesCancelsTheBackendAttempt(overTLS: Bool) async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in
            let client =
                overTLS
                ? try await TestClient.connect(port: try proxy.port("secure"), tls: TestTLS())
                : try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws")
            let upstream = try await backend.accept()
            _ = try await upstream.readRequestHead()
            // Not awaited first: over TLS the client waits for the proxy's close_notify, which only a proxy that
            // keeps reading while admitting sends.
            async let closing: Void = client.close()
            // Far sooner than the 30 s response timeout (10 s: the margin is for a loaded machine).
            #expect(try await upstream.waitForClose(timeout: .seconds(10)).readableBytes == 0)
            await closing
            try await Self.expectSecondHandshakeSucceeds(proxy: proxy, backend: backend)
            #expect(!proxy.logs.contains("backend attempt failed"))
        }
        await backend.stop()
    }

    /// Reading on while admitting loses nothing: what the client sends before the backend's 101 (here more than
    /// `max_head_bytes`, so reads also pause once) reaches the backend whole once the relay starts.
    @Test func bytesSentBeforeTheAnswerAreRelayed() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws")
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            let payload = (0..<40_000).map { UInt8(truncatingIfNeeded: $0) }
            try await client.sendFrame(opcode: TestFrame.binary, payload: payload)
            try await client.sendFrame(opcode: TestFrame.text, payload: Array("after".utf8))
            try await upstream.accept(request)
            #expect(try await client.readHead().status == 101)
            #expect(try await upstream.readFrame().payload == payload)
            #expect(try await upstream.readFrame().payload == Array("after".utf8))
            await client.close()
            await upstream.close()
        }
        await backend.stop()
    }

    @Test func http2StreamResetCancelsTheBackendAttempt() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let stream = try await client.openStream(path: "/ws")
            let upstream = try await backend.accept()
            _ = try await upstream.readRequestHead()
            await stream.reset()
            #expect(try await upstream.waitForClose(timeout: .seconds(10)).readableBytes == 0)
            // The slot is free again, on the same connection.
            let next = try await client.openStream(path: "/ws")
            let nextUpstream = try await backend.accept()
            try await nextUpstream.accept(try await nextUpstream.readRequestHead())
            #expect(try await next.status() == 200)
            #expect(!proxy.logs.contains("backend attempt failed"))
            await client.close()
            await nextUpstream.close()
        }
        await backend.stop()
    }

    @Test func http2ConnectionLossCancelsTheBackendAttempt() async throws {
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            _ = try await client.openStream(path: "/ws")
            let upstream = try await backend.accept()
            _ = try await upstream.readRequestHead()
            await client.close()
            #expect(try await upstream.waitForClose(timeout: .seconds(10)).readableBytes == 0)
            try await Self.expectSecondHandshakeSucceeds(proxy: proxy, backend: backend)
        }
        await backend.stop()
    }

    @Test func http2HandshakesInFlightAreCappedPerConnection() async throws {
        let backend = try await ScriptedBackend.start()
        let limits = "    max_handshakes_per_connection: 1"
        try await TestProxy.with(Self.config(backendPort: backend.port, limits: limits)) { proxy in
            let client = try await TestH2Client.connect(port: try proxy.port("secure"))
            let first = try await client.openStream(path: "/ws")
            let upstream = try await backend.accept()
            _ = try await upstream.readRequestHead()
            let second = try await client.openStream(path: "/ws")
            try await second.waitForEnd()
            #expect(second.collector.reset == .refusedStream)
            #expect(second.collector.headers.isEmpty)
            // Once the first handshake is over, the connection may start another one.
            try await upstream.send("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            #expect(try await first.status() == 403)
            let third = try await client.openStream(path: "/ws")
            let thirdUpstream = try await backend.accept()
            _ = try await thirdUpstream.readRequestHead()
            await third.reset()
            await client.close()
            await upstream.close()
            await thirdUpstream.close()
        }
        await backend.stop()
    }

    // MARK: HTTP/2 stream limits and floods (an independent peer: Python's h2)

    static func echoConfig(maxStreams: Int) -> String {
        """
        listeners:
          - name: secure
            bind: "127.0.0.1:0"
            tls: { self_signed: true }
            max_concurrent_streams: \(maxStreams)
        backends:
          - name: demo
            builtin: echo
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
        """
    }

    static func runPeer(_ arguments: [String]) async throws -> [String: Any] {
        let result = try await ExternalProcess.run(["python3", ExternalProcess.peerScript("h2_abuse.py")] + arguments, timeout: 60)
        #expect(result.status == 0, "\(result.output)")
        let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestError("peer printed no result: \(result.output)")
        }
        return object
    }

    @Test func aStreamOverTheLimitIsRefusedAloneAndItsSiblingsKeepWorking() async throws {
        try await TestProxy.with(Self.echoConfig(maxStreams: 4)) { proxy in
            let seen = try await Self.runPeer(["excess", String(try proxy.port("secure"))])
            #expect(seen["advertised"] as? Int == 4)
            #expect(seen["statuses"] as? [Int] == [200, 200, 200, 200])
            // RFC 9113 §5.1.2: REFUSED_STREAM (7) on the fifth stream, no GOAWAY.
            #expect(seen["extra_reset"] as? Int == 7)
            #expect(seen["goaway"] is NSNull)
            #expect(seen["echoes"] as? [String] == ["hello 0", "hello 1", "hello 2", "hello 3"])
            let metrics = Exposition(String(decoding: proxy.server.engine.metrics.exposition(), as: UTF8.self))
            #expect(metrics.value("gatehouse_connections_refused_total", ["reason": "refused_stream"]) == 1)
        }
    }

    @Test func aResetFloodEndsTheConnectionAndEveryBackend() async throws {
        try await TestProxy.with(Self.echoConfig(maxStreams: 300)) { proxy in
            // 210 resets in one burst: past swift-nio-http2's budget of 200.
            let seen = try await Self.runPeer(["flood", String(try proxy.port("secure")), "210"])
            let accepted = try #require(seen["accepted"] as? Int)
            let highest = try #require(seen["highest_accepted"] as? Int)
            #expect(accepted == 210)
            let goAway = try #require(seen["goaway"] as? [String: Any])
            #expect(goAway["code"] as? Int == 11)  // ENHANCE_YOUR_CALM
            #expect((goAway["last_stream_id"] as? Int ?? 0) >= highest)
            #expect(seen["closed"] as? Bool == true)
            #expect((seen["close_seconds"] as? Double ?? 99) < 5)
            // The connection table is a snapshot with no event: `eventually` is the bounded wait for it to empty.
            let server = proxy.server
            try await eventually("every backend connection to end") { await server.connections().isEmpty }
        }
    }

    // MARK: Connections before the upgrade

    /// A TCP connection whose collector is in place before it connects, so an immediate close is not missed.
    static func rawConnect(port: Int) async throws -> InboundCollector {
        let collector = NIOLockedValueBox<InboundCollector?>(nil)
        _ = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = InboundCollector(eventLoop: channel.eventLoop)
                    collector.withLockedValue { $0 = handler }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return try #require(collector.withLockedValue { $0 })
    }

    @Test func pendingConnectionsPerIPAreCapped() async throws {
        let backend = try await ScriptedBackend.start()
        let limits = "    max_pending_connections_per_ip: 3"
        try await TestProxy.with(Self.config(backendPort: backend.port, limits: limits)) { proxy in
            let pending = proxy.server.engine.pending
            var held: [TestClient] = []
            for _ in 0..<3 {
                held.append(try await TestClient.connect(port: try proxy.port("plain")))
            }
            try await eventually("three pending connections") { pending.count(of: "127.0.0.1") == 3 }
            // The fourth is closed at once, without a byte (no TLS, no HTTP answer).
            let refused = try await Self.rawConnect(port: try proxy.port("secure"))
            let received = try await refused.wait(timeout: .seconds(10), what: "the refused connection to close") { buffer, closed in
                closed ? buffer.readableBytes : nil
            }
            #expect(received == 0)
            #expect(pending.count(of: "127.0.0.1") == 3)
            let metrics = Exposition(String(decoding: proxy.server.engine.metrics.exposition(), as: UTF8.self))
            #expect(metrics.value("gatehouse_connections_refused_total", ["reason": "pending_limit"]) == 1)
            // One leaves: a new one is accepted and can upgrade.
            await held.removeFirst().close()
            try await eventually("a free pending slot") { pending.count(of: "127.0.0.1") == 2 }
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws")
            let upstream = try await backend.accept()
            try await upstream.accept(try await upstream.readRequestHead())
            #expect(try await client.readHead().status == 101)
            // Upgraded connections no longer count as pending.
            try await eventually("the upgraded connection to leave the pending count") { pending.count(of: "127.0.0.1") == 2 }
            await client.close()
            await upstream.close()
            for connection in held { await connection.close() }
            try await eventually("no pending connection") { pending.count == 0 }
        }
        await backend.stop()
    }

    @Test func pendingCounterHonoursBothLimitsAndForgetsIdleAddresses() {
        let counter = PendingConnectionCounter()
        let a1 = counter.admit(ip: "10.0.0.1", maxTotal: 3, maxPerIP: 2)
        let a2 = counter.admit(ip: "10.0.0.1", maxTotal: 3, maxPerIP: 2)
        #expect(a1 != nil && a2 != nil)
        #expect(counter.admit(ip: "10.0.0.1", maxTotal: 3, maxPerIP: 2) == nil)  // per IP
        let b1 = counter.admit(ip: "10.0.0.2", maxTotal: 3, maxPerIP: 2)
        #expect(b1 != nil)
        #expect(counter.admit(ip: "10.0.0.3", maxTotal: 3, maxPerIP: 2) == nil)  // in total
        #expect(counter.count == 3)
        a1?.release()
        a1?.release()  // once only
        #expect(counter.count == 2)
        #expect(counter.count(of: "10.0.0.1") == 1)
        a2?.release()
        b1?.release()
        #expect(counter.count == 0)
        #expect(counter.count(of: "10.0.0.1") == 0)
        #expect(counter.admit(ip: nil, maxTotal: 1, maxPerIP: 1) != nil)  // released at once: the ticket is dropped
    }

    @Test func pendingLimitsAreConnectionLevelKeys() throws {
        let yaml = Self.config(backendPort: 9).replacingOccurrences(of: "max_connections: 1", with: "max_pending_connections: 5")
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: yaml, file: "test.yaml") }
        let config = try ProxyConfig.parse(yaml: Self.config(backendPort: 9), file: "test.yaml")
        #expect(config.defaultLimits.maxPendingConnections == 10_000)
        #expect(config.defaultLimits.maxPendingConnectionsPerIP == 256)
        #expect(config.defaultLimits.maxHandshakesPerConnection == 16)
    }
}
