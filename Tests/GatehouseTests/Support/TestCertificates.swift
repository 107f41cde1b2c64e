import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A certificate authority made for one test run, issuing leaf certificates for chosen names.
struct TestCertificateAuthority {
    let key: P256.Signing.PrivateKey
    let certificate: Certificate
    let directory: URL

    /// The CA as NIOSSL sees it, for client trust.
    var nioCertificate: NIOSSLCertificate {
        get throws { try NIOSSLCertificate(bytes: Array(self.certificate.serializeAsPEM().pemString.utf8), format: .pem) }
    }

    var pemPath: String { self.directory.appendingPathComponent("ca.pem").path }

    static func make() throws -> TestCertificateAuthority {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("Gatehouse Test CA") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: .init(key)
        )
        let authority = TestCertificateAuthority(key: key, certificate: certificate, directory: directory)
        try certificate.serializeAsPEM().pemString.write(toFile: authority.pemPath, atomically: true, encoding: .utf8)
        return authority
    }

    /// Issues a leaf for `names` (DNS names, or IP literals) and writes `NAME.pem` / `NAME-key.pem`; returns the paths.
    func issue(_ fileName: String, names: [String]) throws -> (cert: String, key: String, certificate: Certificate) {
        let leafKey = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(names.first ?? fileName) }
        let sans: [GeneralName] = names.map { name in
            if let ip = Self.ipv4Bytes(name) { return .ipAddress(ASN1OctetString(contentBytes: ip[...])) }
            return .dnsName(name)
        }
        let leaf = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey),
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86400),
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(sans)
            },
            issuerPrivateKey: .init(self.key)
        )
        let certPath = self.directory.appendingPathComponent("\(fileName).pem").path
        let keyPath = self.directory.appendingPathComponent("\(fileName)-key.pem").path
        try leaf.serializeAsPEM().pemString.write(toFile: certPath, atomically: true, encoding: .utf8)
        try leafKey.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return (certPath, keyPath, leaf)
    }

    private static func ipv4Bytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".")
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }
}

/// Client certificates for mTLS tests.
extension TestCertificateAuthority {
    /// Issues a client certificate (EKU clientAuth) with the given subject alternative names and validity, and
    /// writes `NAME.pem` / `NAME-key.pem`; returns the paths and the certificate.
    func issueClient(
        _ fileName: String, commonName: String, uris: [String] = [], dnsNames: [String] = [], emails: [String] = [],
        notBefore: Date = Date().addingTimeInterval(-3600), notAfter: Date = Date().addingTimeInterval(86400)
    ) throws -> (cert: String, key: String, certificate: Certificate) {
        let leafKey = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Gatehouse Tests")
            CommonName(commonName)
        }
        let sans: [GeneralName] = uris.map { .uniformResourceIdentifier($0) } + dnsNames.map { .dnsName($0) }
            + emails.map { .rfc822Name($0) }
        let leaf = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter,
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                if !sans.isEmpty { SubjectAlternativeNames(sans) }
            },
            issuerPrivateKey: .init(self.key)
        )
        let certPath = self.directory.appendingPathComponent("\(fileName).pem").path
        let keyPath = self.directory.appendingPathComponent("\(fileName)-key.pem").path
        try leaf.serializeAsPEM().pemString.write(toFile: certPath, atomically: true, encoding: .utf8)
        try leafKey.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        return (certPath, keyPath, leaf)
    }
}
