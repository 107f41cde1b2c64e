import Crypto
import Foundation
import NIOCore
import Testing
@testable import Gatehouse

/// The frame relay with large messages and with independent peers on both ends.
@Suite("Frame relay with real peers")
struct FrameRelayPeerTests {
    @Test func oneAndSixtyFourMiBMessagesPassUnderLimits() async throws {
        let yaml = TestConfig.echo(route: "    limits: { max_frame_bytes: 64MiB, max_message_bytes: 64MiB }")
            .replacingOccurrences(of: "    origins: [\"*\"]\n    limits", with: "    origins: [\"*\"]\n    limits")
            .replacingOccurrences(of: "builtin: echo", with: "builtin: echo\n    max_frame_bytes: 16MiB")
        try await TestProxy.with(yaml) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/echo")
            #expect(try await client.readHead().status == 101)
            for size in [1 << 20, 64 << 20] {
                var payload = [UInt8](repeating: 0, count: size)
                payload.withUnsafeMutableBytes { bytes in
                    for index in stride(from: 0, to: size, by: 512) { bytes[index] = UInt8(truncatingIfNeeded: index >> 9) }
                }
                // Sent as a fragmented message of 4 frames for the large one, a single frame for the small one.
                let pieces = size > 1 << 20 ? 4 : 1
                let piece = size / pieces
                for index in 0..<pieces {
                    let slice = Array(payload[(index * piece)..<((index + 1) * piece)])
                    try await client.sendFrame(opcode: index == 0 ? TestFrame.binary : TestFrame.continuation, payload: slice, fin: index == pieces - 1)
                }
                let echoed = try await client.readMessage(timeout: .seconds(120))
                #expect(echoed.payload.count == size)
                #expect(SHA256.hash(data: echoed.payload) == SHA256.hash(data: payload))
            }
            await client.close()
        }
    }

    @Test func permessageDeflateNegotiatedBetweenIndependentPeersPassesThrough() async throws {
        let (server, port) = try await PythonPeerServer.start("ws_deflate.py", ["server"])
        defer { server.stop() }
        let yaml = """
            listeners:
              - name: plain
                bind: "127.0.0.1:0"
            backends:
              - name: py
                servers: ["127.0.0.1:\(port)"]
            routes:
              - name: py
                path: "/"
                backend: py
                origins: ["*"]
            """
        try await TestProxy.with(yaml) { proxy in
            let result = try await ExternalProcess.run(
                ["python3", ExternalProcess.peerScript("ws_deflate.py"), "client", "ws://127.0.0.1:\(try proxy.port("plain"))/"],
                timeout: 60
            )
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("ok deflate=permessage-deflate"))
            // Compressed messages really went through as RSV1 frames, not refused.
            let line = try await proxy.logs.waitForLine(containing: "connection closed")
            #expect(line.contains("close_code=1000"))
            #expect(line.contains("messages_in=5"))
        }
    }
}
