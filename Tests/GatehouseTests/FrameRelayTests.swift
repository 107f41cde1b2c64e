import Crypto
import NIOCore
import Testing
@testable import Gatehouse

/// RFC 6455 enforcement on the relay path, driven with raw bytes over real sockets: every rule asserts the exact
/// close code each side receives.
@Suite("Frame relay")
struct FrameRelayTests {
    static func config(backendPort: Int) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: app
            servers: ["127.0.0.1:\(backendPort)"]
        routes:
          - name: plain
            path: "/plain"
            backend: app
            origins: ["*"]
          - name: limited
            path: "/limited"
            backend: app
            origins: ["*"]
            limits: { max_frame_bytes: 1KiB, max_message_bytes: 4KiB }
          - name: rate
            path: "/rate"
            backend: app
            origins: ["*"]
            limits: { messages_per_second: 5 }
          - name: keepalive
            path: "/keepalive"
            backend: app
            origins: ["*"]
            limits: { keepalive_interval: 1s }
          - name: idle
            path: "/idle"
            backend: app
            origins: ["*"]
            limits: { idle_timeout: 1s, keepalive_interval: 0 }
        defaults:
          limits: { close_timeout: 2s, keepalive_interval: 0 }
        """
    }

    /// A client and the backend connection behind it, after a 101.
    struct Pair {
        let client: TestClient
        let upstream: TestClient
    }

    func withPair(path: String = "/plain", extensions: String? = nil, _ body: (Pair, TestProxy) async throws -> Void) async throws {
        let backend = try await ScriptedBackend.start()
        do {
            try await TestProxy.with(Self.config(backendPort: backend.port)) { proxy in
                let client = try await TestClient.connect(port: try proxy.port("plain"))
                try await client.sendUpgrade(path: path, extra: extensions.map { [("Sec-WebSocket-Extensions", $0)] } ?? [])
                let upstream = try await backend.accept()
                let request = try await upstream.readRequestHead()
                try await upstream.accept(request, extra: extensions.map { [("Sec-WebSocket-Extensions", $0)] } ?? [])
                #expect(try await client.readHead().status == 101)
                try await body(Pair(client: client, upstream: upstream), proxy)
                await client.close()
                await upstream.close()
            }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    /// Asserts the next frame each side gets is a close with these codes, then that both connections end.
    func expectClose(_ pair: Pair, client clientCode: UInt16, backend backendCode: UInt16, clientReason: String? = nil) async throws {
        let toClient = try await pair.client.readFrame()
        #expect(toClient.opcode == TestFrame.close, "client got \(toClient)")
        #expect(toClient.closeCode == clientCode)
        #expect(!toClient.masked)
        if let clientReason { #expect(toClient.closeReason == clientReason) }
        let toBackend = try await pair.upstream.readFrame()
        #expect(toBackend.opcode == TestFrame.close, "backend got \(toBackend)")
        #expect(toBackend.closeCode == backendCode)
        #expect(toBackend.masked)
        // Neither side answers: the proxy still closes both within close_timeout (2 s; the margin is for a loaded machine).
        _ = try await pair.client.waitForClose(timeout: .seconds(10))
        _ = try await pair.upstream.waitForClose(timeout: .seconds(10))
    }

    // MARK: Protocol violations by the client

    @Test(arguments: [
        ("unmasked client frame", TestFrame.encode(opcode: TestFrame.text, payload: Array("hi".utf8), mask: nil)),
        ("unknown opcode", TestFrame.encode(opcode: 0x3, payload: [1, 2])),
        ("RSV1 without extension", TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: Array("hi".utf8))),
        ("fragmented control", TestFrame.encode(fin: false, opcode: TestFrame.ping, payload: [1])),
        ("control over 125", TestFrame.encode(opcode: TestFrame.ping, payload: [UInt8](repeating: 7, count: 126))),
        ("continuation without message", TestFrame.encode(opcode: TestFrame.continuation, payload: [1])),
        ("data inside unfinished message", TestFrame.encode(fin: false, opcode: TestFrame.text, payload: [65]) + TestFrame.encode(opcode: TestFrame.binary, payload: [1])),
        ("close payload of 1 byte", TestFrame.encode(opcode: TestFrame.close, payload: [3])),
        ("invalid close code 1005", TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(1005))),
        ("invalid close code 999", TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(999))),
    ])
    func clientViolationsClose1002(_ name: String, _ bytes: [UInt8]) async throws {
        try await self.withPair { pair, _ in
            try await pair.client.send(bytes)
            // What preceded the offending frame was forwarded; the offending frame was not.
            if name == "data inside unfinished message" {
                let fragment = try await pair.upstream.readFrame()
                #expect(fragment.opcode == TestFrame.text && !fragment.fin)
            }
            try await self.expectClose(pair, client: 1002, backend: 1002)
        }
    }

    // MARK: Protocol violations by the backend

    @Test(arguments: [
        ("masked server frame", TestFrame.encode(opcode: TestFrame.text, payload: Array("hi".utf8))),
        ("unknown opcode", TestFrame.encode(opcode: 0xB, payload: [], mask: nil)),
        ("RSV2", TestFrame.encode(rsv: 0b010, opcode: TestFrame.binary, payload: [1], mask: nil)),
    ])
    func backendViolationsClose1002(_ name: String, _ bytes: [UInt8]) async throws {
        try await self.withPair { pair, _ in
            try await pair.upstream.send(bytes)
            try await self.expectClose(pair, client: 1002, backend: 1002)
        }
    }

    // MARK: Size limits

    @Test func oversizedFrameCloses1009AndIsNotForwarded() async throws {
        try await self.withPair(path: "/limited") { pair, _ in
            try await pair.client.sendFrame(opcode: TestFrame.binary, payload: [UInt8](repeating: 1, count: 1024))
            #expect(try await pair.upstream.readFrame().payload.count == 1024)
            try await pair.client.sendFrame(opcode: TestFrame.binary, payload: [UInt8](repeating: 2, count: 1025))
            // The next thing the backend sees is the close, not the oversized frame.
            try await self.expectClose(pair, client: 1009, backend: 1009)
        }
    }

    @Test func oversizedMessageOverFragmentsCloses1009() async throws {
        try await self.withPair(path: "/limited") { pair, _ in
            for index in 0..<4 {
                try await pair.client.sendFrame(opcode: index == 0 ? TestFrame.text : TestFrame.continuation, payload: [UInt8](repeating: 65, count: 1000), fin: false)
            }
            for _ in 0..<4 { #expect(try await pair.upstream.readFrame().payload.count == 1000) }
            try await pair.client.sendFrame(opcode: TestFrame.continuation, payload: [UInt8](repeating: 65, count: 100))
            try await self.expectClose(pair, client: 1009, backend: 1009)
        }
    }

    @Test func oversizedFrameFromTheBackendCloses1009() async throws {
        try await self.withPair(path: "/limited") { pair, _ in
            try await pair.upstream.send(TestFrame.encode(opcode: TestFrame.binary, payload: [UInt8](repeating: 1, count: 2000), mask: nil))
            try await self.expectClose(pair, client: 1009, backend: 1009)
        }
    }

    // MARK: Message rate

    @Test func messageRateCloses1008() async throws {
        try await self.withPair(path: "/rate") { pair, _ in
            var frames: [UInt8] = []
            for _ in 0..<20 { frames += TestFrame.encode(opcode: TestFrame.text, payload: Array("x".utf8)) }
            try await pair.client.send(frames)
            var relayed = 0
            while true {
                let frame = try await pair.upstream.readFrame()
                if frame.opcode == TestFrame.close {
                    #expect(frame.closeCode == 1008)
                    break
                }
                relayed += 1
            }
            #expect(relayed == 5)  // the burst: one second's worth
            let toClient = try await pair.client.readFrame()
            #expect(toClient.closeCode == 1008)
            #expect(toClient.closeReason == "message rate exceeded")
        }
    }

    // MARK: Close handshake

    @Test func clientCloseIsRelayedWithCodeAndReason() async throws {
        try await self.withPair { pair, proxy in
            try await pair.client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(4000, "done here"))
            let atBackend = try await pair.upstream.readFrame()
            #expect(atBackend.closeCode == 4000)
            #expect(atBackend.closeReason == "done here")
            #expect(atBackend.masked)
            try await pair.upstream.send(TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(4000), mask: nil))
            let atClient = try await pair.client.readFrame()
            #expect(atClient.closeCode == 4000)
            _ = try await pair.client.waitForClose()
            _ = try await pair.upstream.waitForClose()
            let line = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(line.contains("close_code=4000"))
            #expect(line.contains("closed_by=client"))
            #expect(line.contains("frames_in=1"))
        }
    }

    @Test func backendVanishingGivesTheClient1014() async throws {
        try await self.withPair { pair, _ in
            await pair.upstream.close()
            let frame = try await pair.client.readFrame()
            #expect(frame.closeCode == 1014)
            try await pair.client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1014))
            _ = try await pair.client.waitForClose()
        }
    }

    @Test func clientVanishingGivesTheBackend1001() async throws {
        try await self.withPair { pair, _ in
            await pair.client.close()
            let frame = try await pair.upstream.readFrame()
            #expect(frame.closeCode == 1001)
            #expect(frame.masked)
            _ = try await pair.upstream.waitForClose(timeout: .seconds(10))
        }
    }

    // MARK: Pings, keepalive, idle

    @Test func peersOwnPingsAndPongsAreRelayedUntouched() async throws {
        try await self.withPair { pair, _ in
            try await pair.client.sendFrame(opcode: TestFrame.ping, payload: Array("c-ping".utf8))
            let ping = try await pair.upstream.readFrame()
            #expect(ping.opcode == TestFrame.ping && ping.payload == Array("c-ping".utf8) && ping.masked)
            try await pair.upstream.send(TestFrame.encode(opcode: TestFrame.pong, payload: Array("c-ping".utf8), mask: nil))
            let pong = try await pair.client.readFrame()
            #expect(pong.opcode == TestFrame.pong && pong.payload == Array("c-ping".utf8))
            try await pair.upstream.send(TestFrame.encode(opcode: TestFrame.ping, payload: Array("b-ping".utf8), mask: nil))
            #expect(try await pair.client.readFrame().payload == Array("b-ping".utf8))
            try await pair.client.sendFrame(opcode: TestFrame.pong, payload: Array("b-ping".utf8))
            #expect(try await pair.upstream.readFrame().opcode == TestFrame.pong)
        }
    }

    @Test func fragmentedMessagesWithInterleavedPingsPassIntact() async throws {
        try await self.withPair { pair, _ in
            var bytes: [UInt8] = []
            bytes += TestFrame.encode(fin: false, opcode: TestFrame.text, payload: Array("Hel".utf8))
            bytes += TestFrame.encode(opcode: TestFrame.ping, payload: [1])
            bytes += TestFrame.encode(fin: false, opcode: TestFrame.continuation, payload: Array("lo, ".utf8))
            bytes += TestFrame.encode(opcode: TestFrame.pong, payload: [2])
            bytes += TestFrame.encode(opcode: TestFrame.continuation, payload: Array("world".utf8))
            // Sent one byte at a time: headers cut anywhere must not change anything.
            for byte in bytes { try await pair.client.send([byte]) }
            var text: [UInt8] = []
            var controls: [UInt8] = []
            while true {
                let frame = try await pair.upstream.readFrame()
                if frame.opcode >= 0x8 { controls.append(frame.opcode); continue }
                text += frame.payload
                if frame.fin { break }
            }
            #expect(String(decoding: text, as: UTF8.self) == "Hello, world")
            #expect(controls == [TestFrame.ping, TestFrame.pong])
        }
    }

    @Test func keepalivePingsAQuietClientAndSwallowsItsPong() async throws {
        try await self.withPair(path: "/keepalive") { pair, _ in
            let ping = try await pair.client.readFrame(timeout: .seconds(10))
            #expect(ping.opcode == TestFrame.ping)
            #expect(!ping.masked)
            try await pair.client.sendFrame(opcode: TestFrame.pong, payload: ping.payload)
            // The pong is not forwarded; a data frame sent after it is the first thing the backend sees.
            try await pair.client.sendFrame(opcode: TestFrame.text, payload: Array("after".utf8))
            let first = try await pair.upstream.readFrame()
            #expect(first.opcode == TestFrame.text)
            #expect(first.payload == Array("after".utf8))
        }
    }

    @Test func keepaliveClosesAClientThatNeverAnswers() async throws {
        try await self.withPair(path: "/keepalive") { pair, _ in
            let ping = try await pair.client.readFrame(timeout: .seconds(10))
            #expect(ping.opcode == TestFrame.ping)
            // No pong within twice the interval.
            try await self.expectClose(pair, client: 1001, backend: 1001)
        }
    }

    @Test func idleTimeoutClosesBothSides() async throws {
        try await self.withPair(path: "/idle") { pair, _ in
            let opened = ContinuousClock.now
            try await self.expectClose(pair, client: 1001, backend: 1001, clientReason: "idle timeout")
            #expect(ContinuousClock.now - opened >= .milliseconds(950))
        }
    }

    @Test func dataFramesKeepAnIdleConnectionOpen() async throws {
        try await self.withPair(path: "/idle") { pair, _ in
            // Data every ~100 ms for 2.5 idle timeouts: the connection stays open throughout (the gap is a tenth of the
            // idle timeout, so a test process starved for most of a second by its neighbours still holds).
            let opened = ContinuousClock.now
            let until = opened + .milliseconds(2500)
            var sent = 0
            while ContinuousClock.now < until {
                try await pair.client.sendFrame(opcode: TestFrame.text, payload: Array("tick".utf8))
                let frame = try await pair.upstream.readFrame()
                #expect(frame.opcode == TestFrame.text, "got \(frame) after \(sent) ticks")
                if frame.opcode != TestFrame.text { return }
                sent += 1
                // 100 ms of quiet, as a deadline on the client's next frame: nothing (no idle close) arrives.
                await #expect(throws: TestError.self, "the client got a frame between ticks") {
                    try await pair.client.readFrame(timeout: .milliseconds(100))
                }
            }
            #expect(sent >= 2)
            #expect(ContinuousClock.now - opened >= .milliseconds(2500))
        }
    }

    // MARK: Extensions

    @Test func rsv1PassesWhenDeflateIsNegotiated() async throws {
        try await self.withPair(extensions: "permessage-deflate") { pair, _ in
            try await pair.client.sendFrame(opcode: TestFrame.text, payload: [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00], rsv: 0b100)
            let frame = try await pair.upstream.readFrame()
            #expect(frame.rsv == 0b100)
            #expect(frame.payload == [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
            // RSV1 on a continuation is still a violation.
            try await pair.client.sendFrame(opcode: TestFrame.text, payload: [1], fin: false, rsv: 0b100)
            _ = try await pair.upstream.readFrame()
            try await pair.client.sendFrame(opcode: TestFrame.continuation, payload: [1], rsv: 0b100)
            try await self.expectClose(pair, client: 1002, backend: 1002)
        }
    }
}
