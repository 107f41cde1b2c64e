import Logging
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

/// Cipher suites offered on TLS 1.2, checked with an independent client (`openssl s_client`).
extension TLSListenerTests {
    /// An RSA certificate made by the openssl CLI (RSA key exchange suites need an RSA certificate).
    func rsaCertificate() async throws -> (cert: String, key: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-rsa-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cert = directory + "/cert.pem"
        let key = directory + "/key.pem"
        let result = try await ExternalProcess.run([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        ], timeout: 60)
        guard result.status == 0 else { throw TestError("openssl req failed: \(result.output)") }
        return (cert, key)
    }

    func rsaListener(_ files: (cert: String, key: String), ciphers: String = "") -> String {
        TestConfig.echo(listener: """
              - name: secure
                bind: "127.0.0.1:0"
                tls:
                  certificates:
                    - { cert: \(files.cert), key: \(files.key) }
                  \(ciphers)
            """)
    }

    /// Whether a TLS 1.2 handshake offering only `cipher` succeeds, and the output of s_client.
    func handshake(port: Int, cipher: String) async throws -> (accepted: Bool, output: String) {
        let result = try await ExternalProcess.run([
            "openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-tls1_2", "-cipher", cipher,
        ], timeout: 20)
        return (result.status == 0 && result.output.contains("Cipher is \(cipher)"), result.output)
    }

    @Test func tls12OffersOnlyForwardSecretAEADSuitesByDefault() async throws {
        let files = try await self.rsaCertificate()
        try await TestProxy.with(self.rsaListener(files)) { proxy in
            let port = try proxy.port("secure")
            for weak in ["AES128-SHA", "AES256-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA"] {
                let (accepted, output) = try await self.handshake(port: port, cipher: weak)
                #expect(!accepted, "\(weak) was accepted: \(output)")
            }
            for strong in ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"] {
                let (accepted, output) = try await self.handshake(port: port, cipher: strong)
                #expect(accepted, "\(strong) was refused: \(output)")
            }
        }
    }

    @Test func tlsCiphersChangesTheSuites() async throws {
        let files = try await self.rsaCertificate()
        try await TestProxy.with(self.rsaListener(files, ciphers: "ciphers: \"ECDHE-RSA-AES256-GCM-SHA384\"")) { proxy in
            let port = try proxy.port("secure")
            #expect(try await self.handshake(port: port, cipher: "ECDHE-RSA-AES256-GCM-SHA384").accepted)
            #expect(try await !self.handshake(port: port, cipher: "ECDHE-RSA-AES128-GCM-SHA256").accepted)
        }
        // The client can negotiate a legacy suite when the operator asks for it: the default refusal is the proxy's.
        try await TestProxy.with(self.rsaListener(files, ciphers: "ciphers: [AES128-SHA]")) { proxy in
            let (accepted, output) = try await self.handshake(port: try proxy.port("secure"), cipher: "AES128-SHA")
            #expect(accepted, "\(output)")
        }
    }

    @Test func backendReEncryptionOffersTheSameSuites() async throws {
        let yaml = """
            listeners:
              - name: plain
                bind: "127.0.0.1:0"
            backends:
              - name: secure
                servers: ["127.0.0.1:9443"]
                tls: { server_name: backend.test }
            routes:
              - name: secure
                path: "/secure"
                backend: secure
                origins: ["*"]
            """
        let config = try ProxyConfig.parse(yaml: yaml, file: "backend.yaml")
        var builder = ServingStateBuilder(metrics: ProxyMetrics(), logger: Logger(label: "test"), environment: [:])
        let state = try await builder.build(config, generation: 1, echo: .placeholder)
        let context = try #require(state.routes.all.first?.backend.tls?.context)
        #expect(context.configuration.cipherSuites == CipherSuites.intermediate.cipherString)
    }

    @Test func badCipherListsAreConfigErrorsAtTheKey() throws {
        func error(_ ciphers: String) -> ConfigError? {
            let yaml = TestConfig.echo(listener: """
                  - name: secure
                    bind: "127.0.0.1:0"
                    tls:
                      self_signed: true
                      ciphers: \(ciphers)
                """)
            do {
                _ = try ProxyConfig.parse(yaml: yaml, file: "tls.yaml")
                return nil
            } catch {
                return error
            }
        }
        let unknown = try #require(error("\"ECDHE-RSA-AES128-GCM-SHA265\""))
        #expect(unknown.line == 8 && unknown.column == 16, "\(unknown)")
        #expect(unknown.message.contains("unknown TLS 1.2 cipher suite 'ECDHE-RSA-AES128-GCM-SHA265'"))
        #expect(error("\"\"") != nil)
        #expect(error("[]")?.message.contains("empty") == true)
        #expect(error("\"HIGH:!aNULL\"") != nil)
        #expect(error("[TLS_AES_128_GCM_SHA256]")?.message.contains("TLS 1.3") == true)
        #expect(error("\"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\"") != nil)
        #expect(error("\"ECDHE-ECDSA-AES128-GCM-SHA256:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"") == nil)
        #expect(try CipherSuites(parsing: ["ecdhe-rsa-aes128-gcm-sha256"]).cipherString == "ECDHE-RSA-AES128-GCM-SHA256")
        #expect(error("[ECDHE-RSA-AES128-GCM-SHA256]\n      min_version: \"1.3\"")?.message.contains("TLS 1.2 only") == true)
    }
}

import Foundation

/// Session resumption (stateless tickets, on by default in BoringSSL), checked with `openssl s_client`.
extension TLSListenerTests {
    /// One s_client handshake that saves its session to (or resumes it from) `session`, sending a request the proxy
    /// answers and closes on (TLS 1.3 tickets travel with the server's first write). Returns s_client's output.
    func sessionHandshake(port: Int, version: String, serverName: String, session: String, resume: Bool) async throws -> String {
        let request = "GET /nowhere HTTP/1.1\r\nHost: \(serverName)\r\nConnection: close\r\n\r\n"
        let result = try await ExternalProcess.run([
            "openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", serverName, version, "-ign_eof",
            resume ? "-sess_in" : "-sess_out", session,
        ], timeout: 20, stdin: Array(request.utf8))
        #expect(result.status == 0, "s_client failed: \(result.output)")
        return result.output
    }

    @Test(arguments: ["-tls1_3", "-tls1_2"])
    func clientsResumeTheirSessions(version: String) async throws {
        let ca = try TestCertificateAuthority.make()
        try await TestProxy.with(try self.config(ca)) { proxy in
            let port = try proxy.port("secure")
            // The second certificate too: its SNI context must take the tickets of the listener's context.
            for name in ["a.test", "b.test"] {
                let session = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-session-\(UUID().uuidString)").path
                defer { try? FileManager.default.removeItem(atPath: session) }
                let first = try await self.sessionHandshake(port: port, version: version, serverName: name, session: session, resume: false)
                #expect(first.contains("New, TLSv1."), "first handshake: \(first)")
                #expect(first.contains("HTTP/1.1 "), "no answer: \(first)")
                let second = try await self.sessionHandshake(port: port, version: version, serverName: name, session: session, resume: true)
                #expect(second.contains("Reused, TLSv1."), "\(name) \(version) did not resume: \(second)")
            }
        }
    }
}
