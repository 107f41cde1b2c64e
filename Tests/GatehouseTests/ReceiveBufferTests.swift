import NIOCore
import NIOEmbedded
import Testing
@testable import Gatehouse

/// Proxied sockets start with small receive buffers (``ReceiveBuffers``) and keep the first one out of NIO's reuse
/// (``ReceiveBufferPin``): heads and frames larger than the first buffer arrive over several reads and must pass
/// whole, and later reads must get buffers large enough for large frames.
@Suite("Receive buffers")
struct ReceiveBufferTests {
    let config = """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: app
            servers: ["127.0.0.1:BACKEND"]
        routes:
          - name: app
            path: "/ws"
            backend: app
            origins: ["*"]
        """

    @Test func headsAndFramesLargerThanTheFirstBufferPassWhole() async throws {
        #expect(ReceiveBuffers.plain.initial <= 512)
        let backend = try await ScriptedBackend.start()
        try await TestProxy.with(self.config.replacingOccurrences(of: "BACKEND", with: "\(backend.port)")) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            // Eight times the client's first buffer, in one write.
            let big = String(repeating: "c", count: 4000)
            try await client.sendUpgrade(path: "/ws", extra: [("X-Big", big)])
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            #expect(request.header("x-big") == big)
            let answer = String(repeating: "b", count: 3000)
            try await upstream.accept(request, extra: [("X-Answer", answer)])
            let head = try await client.readHead()
            #expect(head.status == 101)
            #expect(head.header("x-answer") == answer)

            // 40 KiB each way: the buffers grow past their first size; the bytes arrive unchanged.
            let up = (0..<40_960).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try await client.sendFrame(opcode: TestFrame.binary, payload: up)
            let received = try await upstream.readFrame()
            #expect(received.payload == up && received.opcode == TestFrame.binary && received.masked)
            let down = (0..<40_960).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            try await upstream.sendFrame(opcode: TestFrame.binary, payload: down, masked: false)
            let echoed = try await client.readFrame()
            #expect(echoed.payload == down && !echoed.masked)
            await client.close()
        }
        await backend.stop()
    }

    /// Where a buffer's readable bytes live: changes when a write has to copy the storage (it was shared).
    static func address(_ buffer: ByteBuffer) -> UInt {
        buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    /// Sends a first read through a channel whose first handler is the pin, and returns a copy of it: the caller
    /// and the pin are then the only holders of its storage.
    static func firstRead(through channel: EmbeddedChannel) throws -> ByteBuffer {
        try channel.pipeline.syncOperations.addHandler(ReceiveBufferPin())
        var first = channel.allocator.buffer(capacity: 512)
        first.writeString("GET / HTTP/1.1\r\n")
        let copy = first
        try channel.writeInbound(first)
        first = ByteBuffer()
        #expect(try channel.readInbound(as: ByteBuffer.self) == copy)
        return copy
    }

    @Test func thePinHoldsTheFirstBufferWhileTheChannelIsOpenAndLeavesThePipeline() throws {
        let channel = EmbeddedChannel()
        var probe = try Self.firstRead(through: channel)
        let original = Self.address(probe)
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: ReceiveBufferPin.self) }
        // Still referenced by the pin: writing to the only other copy has to copy the storage.
        probe.setInteger(UInt8(ascii: "P"), at: probe.readerIndex)
        #expect(Self.address(probe) != original)
        // A second read passes straight through and is not held.
        var second = channel.allocator.buffer(capacity: 64)
        second.writeString("x")
        try channel.writeInbound(second)
        #expect(try channel.readInbound(as: ByteBuffer.self) == second)
        _ = try? channel.finish()
    }

    @Test func thePinLetsGoWhenTheChannelCloses() throws {
        let channel = EmbeddedChannel()
        var probe = try Self.firstRead(through: channel)
        let original = Self.address(probe)
        _ = try? channel.finish()
        // The last copy owns the storage again and writes in place.
        probe.setInteger(UInt8(ascii: "Q"), at: probe.readerIndex)
        #expect(Self.address(probe) == original)
    }
}
