import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// An ephemeral development certificate made at start-up (`tls.self_signed: true`).
///
/// It names `localhost`, `127.0.0.1` and `::1`, lives 30 days and is never written to disk; the SHA-256
/// fingerprint is logged so a developer can pin it.
struct SelfSignedCertificate: Sendable {
    /// DER certificate.
    let certificate: NIOSSLCertificate
    /// Its private key.
    let privateKey: NIOSSLPrivateKey
    /// SHA-256 of the DER, as colon-separated hex.
    let fingerprint: String
    /// PEM of the certificate, for clients that want to trust it.
    let pem: String

    /// Generates a new certificate and P-256 key.
    static func generate(commonName: String = "gatehouse development certificate") throws -> SelfSignedCertificate {
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            CommonName(commonName)
            OrganizationName("Gatehouse")
        }
        let now = Date()
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames([
                .dnsName("localhost"),
                .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
            ])
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: certificateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(30 * 24 * 3600),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: certificateKey
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let der = serializer.serializedBytes
        let fingerprint = SHA256.hash(data: der).map { String(format: "%02X", $0) }.joined(separator: ":")
        return SelfSignedCertificate(
            certificate: try NIOSSLCertificate(bytes: der, format: .der),
            privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem),
            fingerprint: fingerprint,
            pem: try certificate.serializeAsPEM().pemString
        )
    }
}
