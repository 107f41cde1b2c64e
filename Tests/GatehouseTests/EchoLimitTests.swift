import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Gatehouse

/// The built-in echo server holds whole frames, so their size is bounded (and configurable).
@Suite("Echo limits")
struct EchoLimitTests {
    static func config(maxFrameBytes: String? = nil) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: demo
            builtin: echo
        \(maxFrameBytes.map { "    max_frame_bytes: \($0)" } ?? "")
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
        """
    }

    func connect(_ proxy: TestProxy) async throws -> TestClient {
        let client = try await TestClient.connect(port: try proxy.port("plain"))
        try await client.sendUpgrade(path: "/echo")
        #expect(try await client.readHead().status == 101)
        return client
    }

    func echoes(_ client: TestClient, size: Int) async throws -> Bool {
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await client.sendFrame(opcode: TestFrame.binary, payload: payload)
        let echoed = try await client.readMessage(timeout: .seconds(30))
        return echoed.payload == payload
    }

    /// Sends a frame of `size` bytes (ignoring a send that fails because the peer already closed) and returns the
    /// first frame that comes back.
    func sendOversized(_ client: TestClient, size: Int) async throws -> TestFrame {
        try? await client.sendFrame(opcode: TestFrame.binary, payload: [UInt8](repeating: 7, count: size))
        return try await client.readFrame(timeout: .seconds(30))
    }

    @Test func defaultLimitClosesA2MiBFrameWith1009() async throws {
        try await TestProxy.with(Self.config()) { proxy in
            let client = try await self.connect(proxy)
            #expect(try await self.echoes(client, size: 512 << 10))
            let frame = try await self.sendOversized(client, size: 2 << 20)
            #expect(frame.opcode == TestFrame.close)
            #expect(frame.closeCode == 1009, "\(frame)")
            await client.close()
        }
    }

    @Test func configuredLimitEchoesA2MiBFrame() async throws {
        try await TestProxy.with(Self.config(maxFrameBytes: "4MiB")) { proxy in
            let client = try await self.connect(proxy)
            #expect(try await self.echoes(client, size: 2 << 20))
            let frame = try await self.sendOversized(client, size: 5 << 20)
            #expect(frame.closeCode == 1009, "\(frame)")
            await client.close()
        }
    }

    @Test func maxFrameBytesIsOnlyForTheEchoBackend() throws {
        let servers = Self.config().replacingOccurrences(of: "builtin: echo", with: "servers: [\"127.0.0.1:9\"]\n    max_frame_bytes: 4MiB")
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: servers, file: "t.yaml") }
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: Self.config(maxFrameBytes: "2GiB"), file: "t.yaml") }
        let config = try ProxyConfig.parse(yaml: Self.config(maxFrameBytes: "64KiB"), file: "t.yaml")
        #expect(config.backends[0].echoMaxFrameBytes == 64 << 10)
        #expect(EchoServer.maxFrameSize(for: config) == 64 << 10)
        #expect(EchoServer.maxFrameSize(for: try ProxyConfig.parse(yaml: Self.config(), file: "t.yaml")) == 1 << 20)
    }

    @Test func standaloneEchoServerAppliesItsLimitToNewConnections() async throws {
        let server = try await EchoServer.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, maxFrameSize: 64 << 10)
        do {
            try await self.limitFollowsApply(server)
            await server.stop()
        } catch {
            await server.stop()
            throw error
        }
    }

    func limitFollowsApply(_ server: EchoServer) async throws {
        let port = try #require(server.localAddress?.port)
        let small = try await TestClient.connect(port: port)
        try await small.sendUpgrade(path: "/")
        #expect(try await small.readHead().status == 101)
        #expect(try await self.sendOversized(small, size: 100 << 10).closeCode == 1009)
        await small.close()
        server.apply(try ProxyConfig.parse(yaml: Self.config(maxFrameBytes: "1MiB"), file: "t.yaml"))
        let large = try await TestClient.connect(port: port)
        try await large.sendUpgrade(path: "/")
        #expect(try await large.readHead().status == 101)
        #expect(try await self.echoes(large, size: 100 << 10))
        await large.close()
    }
}
