import NIOCore
import NIOSSL
import Testing
import X509
@testable import Gatehouse

/// TLS termination: certificate choice by SNI, version floor, ALPN.
@Suite("TLS listeners")
struct TLSListenerTests {
    func config(_ ca: TestCertificateAuthority) throws -> String {
        let a = try ca.issue("a", names: ["a.test", "*.wild.test"])
        let b = try ca.issue("b", names: ["b.test"])
        return TestConfig.echo(listener: """
              - name: secure
                bind: "127.0.0.1:0"
                tls:
                  certificates:
                    - { cert: \(a.cert), key: \(a.key) }
                    - { cert: \(b.cert), key: \(b.key) }
            """)
    }

    func peerNames(port: Int, ca: TestCertificateAuthority, serverName: String?) async throws -> [String] {
        let client = try await TestClient.connect(port: port, tls: TestTLS(trust: [try ca.nioCertificate], serverName: serverName))
        defer { Task { await client.close() } }
        // The upgrade completes only if the chain verified against the test CA and the name matched.
        try await client.sendUpgrade(path: "/echo")
        #expect(try await client.readHead().status == 101)
        let certificate = try await client.channel.pipeline.handler(type: NIOSSLClientHandler.self).flatMapThrowing { handler in
            try #require(handler.peerCertificate)
        }.get()
        return ListenerTLSContext.dnsNames(of: certificate)
    }

    @Test func sniPicksTheMatchingCertificate() async throws {
        let ca = try TestCertificateAuthority.make()
        try await TestProxy.with(try self.config(ca)) { proxy in
            let port = try proxy.port("secure")
            #expect(try await self.peerNames(port: port, ca: ca, serverName: "b.test") == ["b.test"])
            #expect(try await self.peerNames(port: port, ca: ca, serverName: "a.test") == ["a.test", "*.wild.test"])
            #expect(try await self.peerNames(port: port, ca: ca, serverName: "x.wild.test") == ["a.test", "*.wild.test"])
        }
    }

    @Test func unknownOrMissingServerNameGetsTheFirstCertificate() async throws {
        let ca = try TestCertificateAuthority.make()
        try await TestProxy.with(try self.config(ca)) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("secure"), tls: TestTLS(serverName: "unknown.test"))
            try await client.sendUpgrade(path: "/echo")
            #expect(try await client.readHead().status == 101)
            let certificate = try await client.channel.pipeline.handler(type: NIOSSLClientHandler.self).map { $0.peerCertificate }.get()
            #expect(certificate.map(ListenerTLSContext.dnsNames) == ["a.test", "*.wild.test"])
            await client.close()
        }
    }

    @Test func tls11IsRefused() async throws {
        let ca = try TestCertificateAuthority.make()
        try await TestProxy.with(try self.config(ca)) { proxy in
            let client = try await TestClient.connect(
                port: try proxy.port("secure"),
                tls: TestTLS(serverName: "a.test", maximumVersion: .tlsv11, minimumVersion: .tlsv1)
            )
            try? await client.sendUpgrade(path: "/echo")
            // The handshake fails: no HTTP answer ever arrives, the connection closes.
            let rest = try await client.waitForClose()
            #expect(rest.readableBytes == 0)
        }
    }

    @Test func tls12AndAlpnHttp11AreAccepted() async throws {
        let ca = try TestCertificateAuthority.make()
        try await TestProxy.with(try self.config(ca)) { proxy in
            let client = try await TestClient.connect(
                port: try proxy.port("secure"),
                tls: TestTLS(trust: [try ca.nioCertificate], serverName: "a.test", maximumVersion: .tlsv12, alpn: ["http/1.1"])
            )
            try await client.sendUpgrade(path: "/echo")
            #expect(try await client.readHead().status == 101)
            await client.close()
        }
    }

    @Test func missingCertificateFileIsAConfigErrorAtStartUp() async throws {
        let yaml = TestConfig.echo(listener: """
              - name: secure
                bind: "127.0.0.1:0"
                tls:
                  certificates:
                    - { cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }
            """)
        await #expect(throws: ConfigError.self) {
            try await TestProxy.with(yaml) { _ in }
        }
    }
}
