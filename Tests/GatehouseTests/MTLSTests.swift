import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import SwiftASN1
import Testing
import X509
@testable import Gatehouse

/// Certificates and files of one mTLS test: a CA, the proxy's certificate, a valid, an expired and a foreign-CA
/// client certificate, and a static token for the routes that also take tokens.
struct MTLSFixture {
    let ca: TestCertificateAuthority
    let server: (cert: String, key: String)
    /// A second listener certificate, chosen by SNI `other.test`.
    let other: (cert: String, key: String)
    let valid: (cert: String, key: String, certificate: Certificate)
    let expired: (cert: String, key: String, certificate: Certificate)
    let foreign: (cert: String, key: String, certificate: Certificate)
    /// The static token of subject `alice`.
    let token = "mtls-test-token-\(UUID().uuidString)"

    static let uri = "spiffe://gatehouse.test/client-a"

    var directory: String { self.ca.directory.path }
    var configFile: String { self.directory + "/test.yaml" }

    static func make() throws -> MTLSFixture {
        let ca = try TestCertificateAuthority.make()
        let server = try ca.issue("server", names: ["localhost", "127.0.0.1"])
        let otherServer = try ca.issue("other", names: ["other.test"])
        let valid = try ca.issueClient("client-a", commonName: "client-a", uris: [Self.uri], dnsNames: ["client-a.gatehouse.test"])
        let expired = try ca.issueClient(
            "client-expired", commonName: "client-expired", uris: ["spiffe://gatehouse.test/expired"],
            notBefore: Date().addingTimeInterval(-2 * 86400), notAfter: Date().addingTimeInterval(-86400)
        )
        let other = try TestCertificateAuthority.make()
        let foreign = try other.issueClient("client-foreign", commonName: "client-foreign", uris: ["spiffe://elsewhere/client"])
        let fixture = MTLSFixture(
            ca: ca, server: (server.cert, server.key), other: (otherServer.cert, otherServer.key), valid: valid, expired: expired,
            foreign: foreign
        )
        let hash = SHA256.hash(data: Array(fixture.token.utf8)).map { String(format: "%02x", $0) }.joined()
        try "alice \(hash)\n".write(toFile: fixture.directory + "/tokens.txt", atomically: true, encoding: .utf8)
        return fixture
    }

    /// SHA-256 of a certificate's DER, as the proxy forwards it.
    static func fingerprint(_ certificate: Certificate) throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return "sha256:" + SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02x", $0) }.joined()
    }

    /// One TLS listener with `client_auth` (the CA path relative to the configuration file), the echo backend and a
    /// recording backend, and routes for each way of combining certificates and tokens.
    func config(mode: String, backendPort: Int) -> String {
        """
        listeners:
          - name: secure
            bind: "127.0.0.1:0"
            tls:
              certificates:
                - { cert: \(self.server.cert), key: \(self.server.key) }
                - { cert: \(self.other.cert), key: \(self.other.key) }
              client_auth: { ca: ca.pem, mode: \(mode) }
        backends:
          - name: demo
            builtin: echo
          - name: app
            servers: ["127.0.0.1:\(backendPort)"]
        auth:
          - name: certs
            type: mtls
            forward_certificate: true
          - name: certs-cn
            type: mtls
            subject_from: [cn]
          - name: bots
            type: static
            tokens_file: tokens.txt
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
            auth: { providers: [certs] }
          - name: app
            path: "/app"
            backend: app
            origins: ["*"]
            allow_underscore_headers: true
            auth: { providers: [certs] }
          - name: cn
            path: "/cn"
            backend: app
            origins: ["*"]
            auth: { providers: [certs-cn] }
          - name: mixed
            path: "/mixed"
            backend: app
            origins: ["*"]
            auth: { providers: [certs-cn, bots] }
          - name: token
            path: "/token"
            backend: app
            origins: ["*"]
            auth: { providers: [bots] }
          - name: scoped
            path: "/scoped"
            backend: app
            origins: ["*"]
            auth: { providers: [certs], scopes: [admin] }
          - name: open
            path: "/open"
            backend: app
            origins: ["*"]
        """
    }

    /// Runs `body` with a recording backend and a proxy whose listener has `client_auth.mode: mode`.
    func withProxy(mode: String, _ body: (TestProxy, RecordingBackend) async throws -> Void) async throws {
        try await RecordingBackend.with { backend in
            try await TestProxy.with(self.config(mode: mode, backendPort: backend.port), file: self.configFile) { proxy in
                try await body(proxy, backend)
            }
        }
    }

    /// The client TLS configuration: trusts the test CA, presents `client` when given.
    func clientTLS(_ client: (cert: String, key: String)?, alpn: [String]) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([try self.ca.nioCertificate])
        configuration.applicationProtocols = alpn
        if let client {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(client.cert).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: client.key, format: .pem))
        }
        return configuration
    }

    /// An HTTP/1.1 test client over TLS, presenting `client` when given.
    func connect(port: Int, client: (cert: String, key: String)?) async throws -> TestClient {
        let context = try NIOSSLContext(configuration: self.clientTLS(client, alpn: ["http/1.1"]))
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connectTimeout(.seconds(5))
            .connect(host: "127.0.0.1", port: port).get()
        let collector = InboundCollector(eventLoop: channel.eventLoop)
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
            try channel.pipeline.syncOperations.addHandler(collector)
        }.get()
        return TestClient(channel: channel, inbound: collector)
    }

    /// An HTTP/2 connection over TLS (ALPN h2) presenting `client`; returns the connection and its stream opener.
    func connectH2(port: Int, client: (cert: String, key: String)) async throws -> (Channel, NIOHTTP2Handler.StreamMultiplexer) {
        let context = try NIOSSLContext(configuration: self.clientTLS(client, alpn: ["h2"]))
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5)).connect(host: "127.0.0.1", port: port).get()
        let seen = NIOLockedValueBox<[HTTP2Setting]>([])
        let signal = InboundCollector(eventLoop: channel.eventLoop)
        let multiplexer = try await channel.eventLoop.submit {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
            let multiplexer = try sync.configureHTTP2Pipeline(mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()) {
                $0.eventLoop.makeSucceededVoidFuture()
            }
            try sync.addHandler(TestH2Client.SettingsWatcher(seen: seen, goAway: NIOLockedValueBox(nil), signal: signal))
            return multiplexer
        }.get()
        // Extended CONNECT may be sent once the server's SETTINGS allowed it.
        _ = try await signal.wait(timeout: .seconds(10), what: "the server's SETTINGS") { _, _ in seen.withLockedValue { $0.isEmpty ? nil : true } }
        return (channel, multiplexer)
    }

    /// Opens an RFC 8441 WebSocket stream.
    static func openStream(
        _ multiplexer: NIOHTTP2Handler.StreamMultiplexer, on eventLoop: EventLoop, path: String, extra: [(String, String)] = []
    ) async throws -> TestH2Stream {
        let collector = H2StreamCollector(eventLoop: eventLoop)
        let stream = try await multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(collector) }
        }.get()
        var headers = HPACKHeaders([
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", path), (":authority", "localhost"),
            ("sec-websocket-version", "13"),
        ])
        for (name, value) in extra { headers.add(name: name, value: value) }
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: false)))
        return TestH2Stream(channel: stream, collector: collector)
    }

    /// `openssl s_client` sending a WebSocket upgrade for `path` and then a close frame over its stdin; the echo
    /// backend answers the close and the proxy ends the connection, so s_client exits on its own.
    func sClient(
        port: Int, client: (cert: String, key: String)?, path: String, extra: [(String, String)] = [], serverName: String = "localhost"
    ) async throws -> String {
        var arguments = [
            "openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", serverName, "-CAfile", self.ca.pemPath,
            "-verify_return_error", "-alpn", "http/1.1", "-ign_eof",
        ]
        if let client { arguments += ["-cert", client.cert, "-key", client.key] }
        let request = TestClient.upgradeRequest(path: path, extra: extra)
        let close = TestFrame.encode(opcode: TestFrame.close, payload: [0x03, 0xE8], mask: [1, 2, 3, 4])
        return try await ExternalProcess.run(arguments, timeout: 20, stdin: Array(request.utf8) + close).output
    }
}

@Suite("Client certificates (mTLS)")
struct MTLSTests {
    // MARK: Configuration

    func parseError(_ yaml: String) -> ConfigError? {
        do {
            _ = try ProxyConfig.parse(yaml: yaml, file: "test.yaml")
            return nil
        } catch {
            return error
        }
    }

    static func listener(_ clientAuth: String) -> String {
        """
        listeners:
          - name: secure
            bind: "127.0.0.1:0"
            tls:
              self_signed: true
              client_auth: \(clientAuth)
        backends:
          - { name: demo, builtin: echo }
        routes:
          - { name: echo, path: "/echo", backend: demo, origins: ["*"] }
        """
    }

    static func provider(_ keys: String) -> String {
        """
        listeners:
          - { name: plain, bind: "127.0.0.1:0" }
        backends:
          - { name: demo, builtin: echo }
        auth:
          - { name: certs, type: mtls\(keys) }
        routes:
          - { name: echo, path: "/echo", backend: demo, origins: ["*"], auth: { providers: [certs] } }
        """
    }

    @Test func clientAuthIsParsedAndValidated() throws {
        let config = try ProxyConfig.parse(yaml: Self.listener("{ ca: certs/ca.pem, mode: optional }"), file: "/etc/gatehouse/g.yaml")
        let clientAuth = try #require(config.listeners.first?.tls?.clientAuth)
        #expect(clientAuth.ca == "/etc/gatehouse/certs/ca.pem")
        #expect(clientAuth.mode == .optional)
        let defaulted = try ProxyConfig.parse(yaml: Self.listener("{ ca: ca.pem }"), file: "test.yaml")
        #expect(defaulted.listeners.first?.tls?.clientAuth?.mode == .required)

        #expect(self.parseError(Self.listener("{ ca: ca.pem, mod: required }"))?.message.contains("unknown key 'mod'") == true)
        #expect(self.parseError(Self.listener("{ mode: required }"))?.message.contains("'ca'") == true)
        #expect(
            self.parseError(Self.listener("{ ca: ca.pem, mode: sometimes }"))?.message
                == "mode must be 'required' or 'optional', found 'sometimes'"
        )
        #expect(self.parseError(Self.listener("ca.pem"))?.message.contains("client_auth must be a mapping") == true)
    }

    @Test func mtlsProviderIsParsedAndValidated() throws {
        let defaults = try ProxyConfig.parse(yaml: Self.provider(""), file: "test.yaml")
        guard case .mtls(let plain) = defaults.auth.first?.kind else {
            Issue.record("not an mtls provider")
            return
        }
        #expect(plain.subjectFrom == [.uri, .dns, .email, .cn])
        #expect(plain.forwardCertificate == false)
        let custom = try ProxyConfig.parse(yaml: Self.provider(", subject_from: [email, cn], forward_certificate: true"), file: "test.yaml")
        guard case .mtls(let mapped) = custom.auth.first?.kind else {
            Issue.record("not an mtls provider")
            return
        }
        #expect(mapped.subjectFrom == [.email, .cn])
        #expect(mapped.forwardCertificate)

        #expect(
            self.parseError(Self.provider(", subject_from: [san]"))?.message == "subject_from entries are uri, dns, email or cn, found 'san'"
        )
        #expect(self.parseError(Self.provider(", subject_from: [cn, cn]"))?.message == "subject_from lists 'cn' twice")
        #expect(self.parseError(Self.provider(", subject_from: []"))?.message.contains("at least one") == true)
        #expect(self.parseError(Self.provider(", forward_cert: true"))?.message.contains("unknown key 'forward_cert'") == true)
    }

    @Test func aMissingCAFileIsAStartError() async throws {
        let yaml = Self.listener("{ ca: /nonexistent/ca.pem, mode: required }")
        await #expect(throws: (any Error).self) { try await TestProxy.with(yaml) { _ in } }
    }

    // MARK: Pure parts

    @Test func distinguishedNamesAreEscapedIntoSafeFieldValues() throws {
        #expect(ClientCertificateName.escape("plain name") == "plain name")
        #expect(ClientCertificateName.escape("a,b+c;d<e>f\"g\\h") == "a\\,b\\+c\\;d\\<e\\>f\\\"g\\\\h")
        #expect(ClientCertificateName.escape("#lead") == "\\#lead")
        #expect(ClientCertificateName.escape(" both ") == "\\ both\\ ")
        #expect(ClientCertificateName.escape("evil\r\nX-Auth-Subject: root") == "evil\\0D\\0AX-Auth-Subject: root")
        #expect(ClientCertificateName.escape("Zoë\u{7F}\0") == "Zo\\C3\\AB\\7F\\00")
        let name = try DistinguishedName {
            CountryName("CH")
            OrganizationName("Example, Inc.")
            CommonName("line\nbreak")
        }
        let text = ClientCertificateName.rfc4514(name)
        #expect(text == "CN=line\\0Abreak,O=Example\\, Inc.,C=CH")
        #expect(HTTPToken.isFieldValue(text))
    }

    @Test func certificatesAreReadAndMappedInOrder() throws {
        let ca = try TestCertificateAuthority.make()
        let issued = try ca.issueClient(
            "full", commonName: "full-cn", uris: ["spiffe://t/full"], dnsNames: ["full.example"], emails: ["full@example.com"]
        )
        var serializer = DER.Serializer()
        try serializer.serialize(issued.certificate)
        let certificate = try ClientCertificate(der: serializer.serializedBytes)
        #expect(certificate.subject == "CN=full-cn,O=Gatehouse Tests")
        #expect(certificate.commonName == "full-cn")
        #expect(certificate.uris == ["spiffe://t/full"])
        #expect(certificate.dnsNames == ["full.example"])
        #expect(certificate.emails == ["full@example.com"])
        #expect("sha256:" + certificate.fingerprint == (try MTLSFixture.fingerprint(issued.certificate)))
        #expect(abs(certificate.notAfter.timeIntervalSince(issued.certificate.notValidAfter)) < 1)

        func subject(_ order: [MTLSProviderConfig.SubjectSource], _ certificate: ClientCertificate) -> String? {
            MTLSProvider(name: "p", subjectFrom: order, forwardCertificate: false).subject(of: certificate)
        }
        #expect(subject([.uri, .dns, .email, .cn], certificate) == "spiffe://t/full")
        #expect(subject([.email, .uri], certificate) == "full@example.com")
        #expect(subject([.cn], certificate) == "full-cn")
        var bare = certificate
        bare.uris = []
        bare.dnsNames = []
        #expect(subject([.uri, .dns, .email, .cn], bare) == "full@example.com")
        #expect(subject([.uri, .dns], bare) == nil)

        let provider = MTLSProvider(name: "certs", subjectFrom: [.uri], forwardCertificate: true)
        guard case .success(let (identity, headers)) = provider.identity(for: certificate, now: Date()) else {
            Issue.record("no identity")
            return
        }
        #expect(identity.subject == "spiffe://t/full")
        #expect(identity.scopes.isEmpty)
        #expect(identity.provider == "certs")
        #expect(identity.expiresAt == certificate.notAfter)
        #expect(headers.map(\.0) == ["X-Client-Cert-Fingerprint", "X-Client-Cert-Subject"])
        guard case .failure(.noSubject) = provider.identity(for: bare, now: Date()) else {
            Issue.record("a certificate without the mapped name gave an identity")
            return
        }
        guard case .failure(.expired) = provider.identity(for: certificate, now: certificate.notAfter.addingTimeInterval(1)) else {
            Issue.record("an expired certificate gave an identity")
            return
        }
    }

    @Test func theClientCertHeaderFamilyIsAlwaysStripped() {
        for allowUnderscores in [false, true] {
            let edits = ForwardedRequest.Edits(
                target: "/", subprotocols: nil, dropAuthorization: false, dropCookies: [], identity: [], key: nil,
                allowUnderscoreHeaders: allowUnderscores
            )
            for name in [
                "X-Client-Cert-Subject", "x-client-cert-fingerprint", "X_Client_Cert_Subject", "x-CLIENT_cert-chain", "X-Client-Cert",
                "x_client_cert",
            ] {
                #expect(ForwardedRequest.action(forHeader: name, edits: edits, connectionNamed: []) == .drop, "\(name) passes")
            }
            #expect(ForwardedRequest.action(forHeader: "X-Client-Certainty", edits: edits, connectionNamed: []) == .forward)
        }
    }

    // MARK: Real peers

    @Test func requiredModeWithOpenSSL() async throws {
        let fixture = try MTLSFixture.make()
        try await fixture.withProxy(mode: "required") { proxy, _ in
            let port = try proxy.port("secure")
            let accepted = try await fixture.sClient(port: port, client: (fixture.valid.cert, fixture.valid.key), path: "/echo")
            #expect(accepted.contains("HTTP/1.1 101"), "\(accepted)")
            for (name, client) in [
                ("expired", (fixture.expired.cert, fixture.expired.key)), ("foreign", (fixture.foreign.cert, fixture.foreign.key)),
            ] {
                let output = try await fixture.sClient(port: port, client: client, path: "/echo")
                #expect(!output.contains("HTTP/1.1"), "\(name): \(output)")
                #expect(output.contains("alert"), "\(name): \(output)")
            }
            let none = try await fixture.sClient(port: port, client: nil, path: "/open")
            #expect(!none.contains("HTTP/1.1"), "\(none)")
            #expect(none.contains("alert certificate required"), "\(none)")
            // The certificate chosen by SNI changes nothing: every one of the listener asks for a client certificate.
            let other = try await fixture.sClient(port: port, client: nil, path: "/open", serverName: "other.test")
            #expect(other.contains("s:CN = other.test"), "\(other)")
            #expect(!other.contains("HTTP/1.1"), "\(other)")
            #expect(other.contains("alert certificate required"), "\(other)")
            let otherValid = try await fixture.sClient(
                port: port, client: (fixture.valid.cert, fixture.valid.key), path: "/echo", serverName: "other.test"
            )
            #expect(otherValid.contains("HTTP/1.1 101"), "\(otherValid)")
        }
    }

    @Test func optionalModeLetsAnonymousClientsReachTokenRoutesButRefusesInvalidCertificates() async throws {
        let fixture = try MTLSFixture.make()
        try await fixture.withProxy(mode: "optional") { proxy, backend in
            let port = try proxy.port("secure")
            let anonymous = try await fixture.sClient(
                port: port, client: nil, path: "/token", extra: [("Authorization", "Bearer \(fixture.token)")]
            )
            #expect(anonymous.contains("HTTP/1.1 101"), "\(anonymous)")
            #expect(backend.received.last?.header("x-auth-subject") == "alice")
            for (name, client) in [
                ("expired", (fixture.expired.cert, fixture.expired.key)), ("foreign", (fixture.foreign.cert, fixture.foreign.key)),
            ] {
                let output = try await fixture.sClient(
                    port: port, client: client, path: "/token", extra: [("Authorization", "Bearer \(fixture.token)")]
                )
                #expect(!output.contains("HTTP/1.1"), "\(name): \(output)")
                #expect(output.contains("alert"), "\(name): \(output)")
            }
            // A certificate-only route without a certificate: a plain 401.
            let client = try await fixture.connect(port: port, client: nil)
            try await client.sendUpgrade(path: "/echo")
            let (head, body) = try await client.readResponse()
            #expect(head.status == 401)
            #expect(body.contains("client certificate required"))
            #expect(head.header("www-authenticate") == nil)
            await client.close()
        }
    }

    @Test func pythonClientCertificateIsTheIdentityAndSpoofedHeadersAreStripped() async throws {
        let fixture = try MTLSFixture.make()
        try await fixture.withProxy(mode: "required") { proxy, backend in
            let url = "wss://127.0.0.1:\(try proxy.port("secure"))/app"
            let script = ExternalProcess.peerScript("ws_client_cert.py")
            let result = try await ExternalProcess.run([
                "python3", script, url, fixture.ca.pemPath, fixture.valid.cert, fixture.valid.key,
                "X-Client-Cert-Subject:CN=spoofed", "X_Client_Cert_Fingerprint:sha256:spoofed", "X-Client-Cert:spoofed",
                "X-Client-Cert-Verified:SUCCESS", "X-Auth-Subject:spoofed",
            ], timeout: 30)
            #expect(result.output.contains("opened"), "\(result.output)")
            let request = try #require(backend.received.last)
            #expect(request.headers("x-auth-subject") == [MTLSFixture.uri])
            #expect(request.headers("x-auth-provider") == ["certs"])
            #expect(request.headers("x-auth-scopes") == [""])
            #expect(request.headers("x-client-cert-fingerprint") == [try MTLSFixture.fingerprint(fixture.valid.certificate)])
            #expect(request.headers("x-client-cert-subject") == ["CN=client-a,O=Gatehouse Tests"])
            let family = request.headers.filter { $0.0.lowercased().replacingOccurrences(of: "_", with: "-").hasPrefix("x-client-cert") }
            #expect(family.count == 2, "\(request.headers)")
            #expect(!request.headers.contains { $0.1.contains("spoofed") || $0.1 == "SUCCESS" }, "\(request.headers)")

            // Without a certificate, or with a foreign one, Python's client fails at TLS.
            for client in [("-", "-"), (fixture.foreign.cert, fixture.foreign.key)] {
                let refused = try await ExternalProcess.run(
                    ["python3", script, url, fixture.ca.pemPath, client.0, client.1], timeout: 30
                )
                #expect(refused.output.contains("tls-error="), "\(refused.output)")
            }
            #expect(backend.received.count == 1)
        }
    }

    @Test func http2StreamsCarryTheConnectionsCertificate() async throws {
        let fixture = try MTLSFixture.make()
        try await fixture.withProxy(mode: "required") { proxy, backend in
            let (channel, multiplexer) = try await fixture.connectH2(port: try proxy.port("secure"), client: (fixture.valid.cert, fixture.valid.key))
            let first = try await MTLSFixture.openStream(
                multiplexer, on: channel.eventLoop, path: "/app", extra: [("x-client-cert-subject", "CN=spoofed"), ("x-client-cert", "x")]
            )
            #expect(try await first.status() == 200)
            let request = try #require(backend.received.last)
            #expect(request.headers("x-auth-subject") == [MTLSFixture.uri])
            #expect(request.headers("x-client-cert-subject") == ["CN=client-a,O=Gatehouse Tests"])
            #expect(request.headers("x-client-cert-fingerprint") == [try MTLSFixture.fingerprint(fixture.valid.certificate)])
            #expect(request.headers("x-client-cert").isEmpty)
            // A second stream of the same connection, on a route mapping the CN and forwarding nothing.
            let second = try await MTLSFixture.openStream(multiplexer, on: channel.eventLoop, path: "/cn", extra: [("x-client-cert-subject", "CN=spoofed")])
            #expect(try await second.status() == 200)
            let cn = try #require(backend.received.last)
            #expect(cn.headers("x-auth-subject") == ["client-a"])
            #expect(cn.headers("x-auth-provider") == ["certs-cn"])
            #expect(cn.headers("x-client-cert-subject").isEmpty)
            #expect(cn.headers("x-client-cert-fingerprint").isEmpty)
            let scoped = try await MTLSFixture.openStream(multiplexer, on: channel.eventLoop, path: "/scoped")
            #expect(try await scoped.status() == 403)
            try? await channel.close()
        }
    }

    @Test func certificatesAndTokensSideBySide() async throws {
        let fixture = try MTLSFixture.make()
        try await fixture.withProxy(mode: "optional") { proxy, backend in
            let port = try proxy.port("secure")
            // With a certificate, no token is needed, and one sent beside it is not forwarded.
            let withCertificate = try await fixture.connect(port: port, client: (fixture.valid.cert, fixture.valid.key))
            try await withCertificate.sendUpgrade(path: "/mixed", extra: [("Authorization", "Bearer not-checked")])
            #expect(try await withCertificate.readHead().status == 101)
            let certified = try #require(backend.received.last)
            #expect(certified.headers("x-auth-subject") == ["client-a"])
            #expect(certified.headers("x-auth-provider") == ["certs-cn"])
            #expect(certified.header("authorization") == nil)
            await withCertificate.close()

            // Without one, the token decides.
            let anonymous = try await fixture.connect(port: port, client: nil)
            try await anonymous.sendUpgrade(path: "/mixed", extra: [("Authorization", "Bearer \(fixture.token)")])
            #expect(try await anonymous.readHead().status == 101)
            let tokened = try #require(backend.received.last)
            #expect(tokened.headers("x-auth-subject") == ["alice"])
            #expect(tokened.headers("x-auth-provider") == ["bots"])
            await anonymous.close()

            let neither = try await fixture.connect(port: port, client: nil)
            try await neither.sendUpgrade(path: "/mixed")
            let refused = try await neither.readHead()
            #expect(refused.status == 401)
            #expect(refused.header("www-authenticate")?.hasPrefix("Bearer") == true)
            await neither.close()

            // A certificate identity has no scopes.
            let scoped = try await fixture.connect(port: port, client: (fixture.valid.cert, fixture.valid.key))
            try await scoped.sendUpgrade(path: "/scoped")
            #expect(try await scoped.readHead().status == 403)
            await scoped.close()
            #expect(backend.received.count == 2)
        }
    }
}
