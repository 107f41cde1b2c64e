import NIOCore
import Testing
@testable import Gatehouse

/// Proxied sockets start with small receive buffers (``ReceiveBuffers``): heads and frames larger than the first
/// buffer arrive over several reads and must pass whole, and buffers must grow for large frames.
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
        #expect(ReceiveBuffers.client.initial <= 512 && ReceiveBuffers.backend.initial <= 256)
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
}
