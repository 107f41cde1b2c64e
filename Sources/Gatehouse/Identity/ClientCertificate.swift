import Crypto
import Foundation
import NIOCore
import NIOSSL
import X509

/// The verified TLS client certificate of a connection, reduced to what identity mapping and the backend need.
///
/// Read once per TLS connection, after the handshake verified it against the listener's `client_auth` CA, and
/// attached to every upgrade request of that connection (the HTTP/1.1 request, or each HTTP/2 stream).
public struct ClientCertificate: Sendable, Equatable {
    /// Subject distinguished name as RFC 4514 text, ASCII only (see ``ClientCertificateName``).
    public var subject: String
    /// First common name (CN) of the subject, if any.
    public var commonName: String?
    /// Subject alternative names by kind, in certificate order (at most ``maxNamesPerKind`` of each).
    public var uris: [String]
    public var dnsNames: [String]
    public var emails: [String]
    /// SHA-256 of the DER certificate, lower-case hex.
    public var fingerprint: String
    /// End of the certificate's validity.
    public var notAfter: Date

    /// SAN entries kept per kind: identity mapping takes the first, and a certificate is not a place to store lists.
    public static let maxNamesPerKind = 16

    /// Why a presented certificate could not be read.
    struct Unreadable: Error {}

    /// Parses a DER certificate.
    init(der: [UInt8]) throws {
        let certificate = try Certificate(derEncoded: der)
        self.subject = ClientCertificateName.rfc4514(certificate.subject)
        self.commonName = ClientCertificateName.firstCommonName(certificate.subject)
        var uris: [String] = []
        var dnsNames: [String] = []
        var emails: [String] = []
        for name in try certificate.extensions.subjectAlternativeNames.map(Array.init) ?? [] {
            switch name {
            case .uniformResourceIdentifier(let uri) where uris.count < Self.maxNamesPerKind: uris.append(uri)
            case .dnsName(let dns) where dnsNames.count < Self.maxNamesPerKind: dnsNames.append(dns)
            case .rfc822Name(let email) where emails.count < Self.maxNamesPerKind: emails.append(email)
            default: continue
            }
        }
        self.uris = uris
        self.dnsNames = dnsNames
        self.emails = emails
        self.fingerprint = SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
        self.notAfter = certificate.notValidAfter
    }

    /// The verified peer certificate of a TLS connection whose handshake just completed; nil when the client sent
    /// none. Call on the channel's event loop. A certificate BoringSSL verified but that cannot be parsed throws:
    /// it must end the connection rather than pass it as anonymous.
    static func peer(of pipeline: ChannelPipeline.SynchronousOperations) throws -> ClientCertificate? {
        guard let certificate = try pipeline.nioSSL_peerCertificate() else { return nil }
        do {
            return try ClientCertificate(der: try certificate.toDERBytes())
        } catch {
            throw Unreadable()
        }
    }
}
