import Foundation
import Logging
import NIOSSL
import X509

/// The TLS server context of one listener: certificates chosen by SNI, TLS 1.2 or newer, the configured cipher
/// suites (forward-secret AEAD only by default), ALPN, and client certificates checked against the listener's CA.
///
/// Building one reads files and parses keys, so it happens off the event loops (start-up and reload); the
/// result is immutable and shared by every connection accepted while it is current.
struct ListenerTLSContext: Sendable {
    /// The context new connections are handed.
    let context: NIOSSLContext
    /// SAN names of each certificate, for logs.
    let names: [[String]]
    /// Whether clients are asked for certificates (`client_auth`): only then is a peer certificate read.
    var verifiesClients: Bool = false

    /// Loads the listener's certificates (or generates the self-signed one) and builds the context.
    static func make(
        config: ListenerTLSConfig,
        listener: String,
        selfSigned: SelfSignedCertificate?,
        file: String,
        position: ConfigPosition
    ) throws(ConfigError) -> ListenerTLSContext {
        var chains: [([NIOSSLCertificate], NIOSSLPrivateKey)] = []
        var names: [[String]] = []
        for pair in config.certificates {
            let chain: [NIOSSLCertificate]
            let key: NIOSSLPrivateKey
            do {
                chain = try NIOSSLCertificate.fromPEMFile(pair.cert)
            } catch {
                throw position.error("listener '\(listener)': cannot load certificate \(pair.cert): \(error)")
            }
            guard !chain.isEmpty else { throw position.error("listener '\(listener)': \(pair.cert) holds no certificate") }
            do {
                key = try NIOSSLPrivateKey(file: pair.key, format: .pem)
            } catch {
                throw position.error("listener '\(listener)': cannot load private key \(pair.key): \(error)")
            }
            chains.append((chain, key))
            names.append(Self.dnsNames(of: chain[0]))
        }
        if config.selfSigned, let selfSigned {
            chains.append(([selfSigned.certificate], selfSigned.privateKey))
            names.append(["localhost"])
        }
        guard let first = chains.first else {
            throw position.error("listener '\(listener)': no certificate")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: first.0.map { .certificate($0) },
            privateKey: .privateKey(first.1)
        )
        tls.minimumTLSVersion = config.minVersion == .v1_3 ? .tlsv13 : .tlsv12
        tls.applicationProtocols = config.alpn
        tls.cipherSuites = config.ciphers.cipherString
        if let clientAuth = config.clientAuth {
            try Self.verifyClients(&tls, clientAuth, listener: listener)
        }
        // After sending close_notify, wait this long for the peer's before closing TCP (NIOSSL's default is 5 s).
        tls.shutdownTimeout = .seconds(1)
        if chains.count > 1 {
            let selector = CertificateSelector(namesPerCertificate: names)
            let overrides: [NIOSSLContextConfigurationOverride] = chains.map { chain in
                var override = NIOSSLContextConfigurationOverride()
                override.certificateChain = chain.0.map { .certificate($0) }
                override.privateKey = .privateKey(chain.1)
                return override
            }
            tls.sslContextCallback = { values, promise in
                promise.succeed(overrides[selector.select(serverName: values.serverHostname)])
            }
        }
        do {
            return ListenerTLSContext(
                context: try NIOSSLContext(configuration: tls), names: names, verifiesClients: config.clientAuth != nil
            )
        } catch {
            throw position.error("listener '\(listener)': the certificate and key do not make a TLS context: \(error)")
        }
    }

    /// Asks clients for a certificate chaining to the CA file. The SNI callback overrides only the certificate and
    /// key, so every server certificate of the listener shares this verification. `required` fails the handshake
    /// without a certificate; `optional` lets a client without one through, but a presented certificate must still
    /// verify (BoringSSL's SSL_VERIFY_PEER), so an invalid one is never mistaken for an anonymous client.
    private static func verifyClients(
        _ tls: inout TLSConfiguration, _ clientAuth: ClientAuthConfig, listener: String
    ) throws(ConfigError) {
        let roots: [NIOSSLCertificate]
        do {
            roots = try NIOSSLCertificate.fromPEMFile(clientAuth.ca)
        } catch {
            throw clientAuth.position.error("listener '\(listener)': cannot load client_auth ca \(clientAuth.ca): \(error)")
        }
        guard !roots.isEmpty else {
            throw clientAuth.position.error("listener '\(listener)': client_auth ca \(clientAuth.ca) holds no certificate")
        }
        // Only the given CAs: the system roots would let any publicly issued certificate in.
        tls.trustRoots = .certificates(roots)
        tls.additionalTrustRoots = []
        tls.sendCANameList = true
        switch clientAuth.mode {
        case .required: tls.certificateVerification = .noHostnameVerification
        case .optional: tls.certificateVerification = .optionalVerification
        }
    }

    /// DNS names from the subject alternative names of a certificate.
    static func dnsNames(of certificate: NIOSSLCertificate) -> [String] {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der),
            let sans = try? parsed.extensions.subjectAlternativeNames
        else { return [] }
        return sans.compactMap { name in
            if case .dnsName(let dns) = name { return dns }
            return nil
        }
    }
}
