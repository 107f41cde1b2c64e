import Crypto
import NIOCore
import NIOSSL
import Testing
@testable import Gatehouse

/// Messages through the whole proxy path to the builtin echo backend, plain and TLS.
@Suite("Echo relay")
struct EchoRelayTests {
    /// The echo backend takes frames up to 16 MiB here (the largest size echoed), above its 1 MiB default.
    static let config = TestConfig.echo(listener: """
          - name: secure
            bind: "127.0.0.1:0"
            tls:
              self_signed: true
        """).replacingOccurrences(of: "builtin: echo", with: "builtin: echo\n    max_frame_bytes: 16MiB")

    static let sizes = [0, 125, 126, 65535, 65536, 16 << 20]

    func echo(sizes: [Int], port: Int, tls: TestTLS?) async throws {
        let client = try await TestClient.connect(port: port, tls: tls)
        try await client.sendUpgrade(path: "/echo")
        let head = try await client.readHead()
        #expect(head.status == 101)
        for size in sizes {
            var payload = [UInt8](repeating: 0, count: size)
            payload.withUnsafeMutableBytes { bytes in
                for index in stride(from: 0, to: size, by: 4096) { bytes[index] = UInt8(truncatingIfNeeded: index >> 12 &+ size) }
            }
            try await client.sendFrame(opcode: TestFrame.binary, payload: payload)
            let echoed = try await client.readMessage(timeout: .seconds(60))
            #expect(echoed.opcode == TestFrame.binary)
            #expect(echoed.payload.count == size)
            #expect(SHA256.hash(data: echoed.payload) == SHA256.hash(data: payload), "size \(size)")
        }
        try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
        let close = try await client.readFrame()
        #expect(close.opcode == TestFrame.close)
        #expect(close.closeCode == 1000)
        #expect(!close.masked)
        _ = try await client.waitForClose()
    }

    @Test func echoesOverPlainWebSocket() async throws {
        try await TestProxy.with(Self.config) { proxy in
            try await self.echo(sizes: Self.sizes, port: try proxy.port("plain"), tls: nil)
        }
    }

    @Test func echoesOverTLS() async throws {
        try await TestProxy.with(Self.config) { proxy in
            try await self.echo(sizes: Self.sizes, port: try proxy.port("secure"), tls: TestTLS(serverName: "localhost"))
        }
    }

    @Test func pipelinedFirstFrameIsNotLost() async throws {
        try await TestProxy.with(Self.config) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            // Request head and first frame in one write: the frame arrives in the same read as the head.
            let frame = TestFrame.encode(opcode: TestFrame.text, payload: Array("early bird".utf8))
            try await client.send(Array(TestClient.upgradeRequest(path: "/echo").utf8) + frame)
            #expect(try await client.readHead().status == 101)
            let echoed = try await client.readFrame()
            #expect(echoed.payload == Array("early bird".utf8))
            #expect(echoed.opcode == TestFrame.text)
            await client.close()
        }
    }

    @Test func accessLogRecordsTheConnection() async throws {
        try await TestProxy.with(Self.config) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/echo")
            _ = try await client.readHead()
            try await client.sendFrame(opcode: TestFrame.text, payload: Array("12345".utf8))
            _ = try await client.readFrame()
            try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
            _ = try await client.readFrame()
            _ = try await client.waitForClose()
            await client.close()
            let line = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(line.contains("listener=plain"))
            #expect(line.contains("route=echo"))
            #expect(line.contains("status=101"))
            #expect(line.contains("backend=127.0.0.1:"))
            #expect(line.contains("client=127.0.0.1:"))
            #expect(line.contains("duration_ms="))
            // 5-byte text frame masked (11 bytes) + close frame (8 bytes) from the client.
            #expect(line.contains("bytes_in=19"))
            #expect(line.contains("bytes_out=11"))
        }
    }
}
