import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import Gatehouse

/// Re-encryption toward backends.
@Suite("Backend TLS")
struct BackendTLSTests {
    /// A TLS backend that accepts WebSocket upgrades and echoes nothing: enough to see the handshake through.
    static func startTLSBackend(cert: String, key: String) async throws -> (Channel, Int) {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        let context = try NIOSSLContext(configuration: configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    let collector = InboundCollector(eventLoop: channel.eventLoop)
                    try channel.pipeline.syncOperations.addHandler(collector)
                    let peer = TestClient(channel: channel, inbound: collector)
                    Task {
                        guard let request = try? await peer.readRequestHead() else { return }
                        try? await peer.accept(request, extra: [("X-Backend-TLS", "yes")])
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return (channel, channel.localAddress?.port ?? 0)
    }

    func config(port: Int, ca: String, serverName: String) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: secure
            servers: ["127.0.0.1:\(port)"]
            tls: { ca: \(ca), server_name: \(serverName) }
        routes:
          - name: secure
            path: "/ws"
            backend: secure
            origins: ["*"]
        """
    }

    @Test func upgradeGoesThroughATLSBackend() async throws {
        let ca = try TestCertificateAuthority.make()
        let leaf = try ca.issue("backend", names: ["backend.internal"])
        let (backend, port) = try await Self.startTLSBackend(cert: leaf.cert, key: leaf.key)
        try await TestProxy.with(self.config(port: port, ca: ca.pemPath, serverName: "backend.internal")) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws")
            let head = try await client.readHead()
            #expect(head.status == 101)
            #expect(head.header("x-backend-tls") == "yes")
            await client.close()
        }
        try await backend.close()
    }

    @Test func aBackendCertificateForAnotherNameIs502() async throws {
        let ca = try TestCertificateAuthority.make()
        let leaf = try ca.issue("backend", names: ["backend.internal"])
        let (backend, port) = try await Self.startTLSBackend(cert: leaf.cert, key: leaf.key)
        try await TestProxy.with(self.config(port: port, ca: ca.pemPath, serverName: "other.internal")) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            try await client.sendUpgrade(path: "/ws")
            let (head, _) = try await client.readResponse()
            #expect(head.status == 502)
            await client.close()
        }
        try await backend.close()
    }

    @Test func tlsToAnIPAddressNeedsAServerName() async throws {
        let yaml = self.config(port: 9, ca: "/nonexistent.pem", serverName: "x").replacingOccurrences(of: ", server_name: x", with: "")
        await #expect(throws: ConfigError.self) { try await TestProxy.with(yaml) { _ in } }
    }
}
