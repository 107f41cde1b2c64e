import Crypto
import NIOCore
import Synchronization
import Testing
@testable import Gatehouse

/// Counts and hashes every byte it receives without keeping them.
final class HashingSink: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var hasher = SHA256()
    private let received = Atomic<Int>(0)
    let signal: InboundCollector

    var count: Int { self.received.load(ordering: .relaxed) }

    init(signal: InboundCollector) {
        self.signal = signal
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { self.hasher.update(bufferPointer: $0) }
        self.received.add(buffer.readableBytes, ordering: .relaxed)
        self.signal.poke()
    }

    func digest() -> SHA256.Digest { self.hasher.finalize() }
}

@Suite("Backpressure")
struct BackpressureTests {
    @Test func stalledBackendBoundsTheProxysBufferAndLosesNothing() async throws {
        let bufferBytes = 64 << 10
        let total = 200 << 20
        let backend = try await ScriptedBackend.start()
        let yaml = """
            listeners:
              - name: plain
                bind: "127.0.0.1:0"
            backends:
              - name: app
                servers: ["127.0.0.1:\(backend.port)"]
            routes:
              - name: app
                path: "/ws"
                backend: app
                origins: ["*"]
                limits: { buffer_bytes: 64KiB }
            """
        try await TestProxy.with(yaml) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws")
            let upstream = try await backend.accept()
            let request = try await upstream.readRequestHead()
            // The backend stops reading before the flood starts.
            try await upstream.channel.setOption(.autoRead, value: false).get()
            let sink = HashingSink(signal: upstream.inbound)
            try await upstream.channel.eventLoop.submit {
                try upstream.channel.pipeline.syncOperations.addHandler(sink, position: .first)
            }.get()
            try await upstream.accept(request)
            #expect(try await client.readHead().status == 101)

            // One masked 1 MiB frame, built once and sent 200 times (building frames byte by byte in a debug
            // build would dominate the test's time).
            let frame = TestFrame.encode(opcode: TestFrame.binary, payload: [UInt8](repeating: 0x5A, count: 1 << 20))
            let frameBuffer = client.channel.allocator.buffer(bytes: frame)
            let frames = total / (1 << 20)
            let sender = Task { () -> SHA256.Digest in
                var hasher = SHA256()
                for _ in 0..<frames {
                    hasher.update(data: frame)
                    try await client.channel.writeAndFlush(frameBuffer)
                }
                return hasher.finalize()
            }
            // Wait until the proxy holds back the client: its backlog toward the backend is full.
            let paused = try await self.waitFor(proxy, seconds: 30) { $0.clientReadPaused }
            #expect(paused.peakBufferedBytes > 0)
            #expect(paused.peakBufferedBytes <= bufferBytes + 64 << 10, "backlog \(paused.peakBufferedBytes)")

            // The backend reads again: every byte arrives, in order.
            try await upstream.channel.setOption(.autoRead, value: true).get()
            upstream.channel.read()
            let sentDigest = try await sender.value
            let expected = frames * frame.count
            _ = try await upstream.inbound.wait(timeout: .seconds(120), what: "all bytes at the backend") { _, _ in
                sink.count >= expected ? true : nil
            }
            let received = try await upstream.channel.eventLoop.submit { (sink.count, sink.digest()) }.get()
            #expect(received.0 == expected)
            #expect(received.1 == sentDigest)
            let final = try #require(await proxy.server.connections().first)
            #expect(final.peakBufferedBytes <= bufferBytes + 64 << 10, "backlog \(final.peakBufferedBytes)")
            #expect(final.bytesFromClient == expected)
            await client.close()
        }
        await backend.stop()
    }

    /// The pause flags live in connection snapshots, which announce no change: a bounded `eventually`.
    func waitFor(_ proxy: TestProxy, seconds: Double, _ condition: (ConnectionSnapshot) -> Bool) async throws -> ConnectionSnapshot {
        try await eventuallyValue("connection state", deadline: .milliseconds(Int(seconds * 1000))) {
            await proxy.server.connections().first.flatMap { condition($0) ? $0 : nil }
        }
    }
}
