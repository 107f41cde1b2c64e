import Foundation

/// A verified TLS client certificate as the identity (`type: mtls`).
///
/// It verifies no token: the listener's TLS handshake verified the certificate against `client_auth.ca`, and
/// this provider only names the client from it. Its identity has no scopes, so a route requiring scopes refuses it.
final class MTLSProvider: AuthProvider {
    let name: String
    let subjectFrom: [MTLSProviderConfig.SubjectSource]
    let forwardCertificate: Bool

    /// Headers carrying the certificate to the backend with `forward_certificate: true`.
    static let fingerprintHeader = "X-Client-Cert-Fingerprint"
    static let subjectHeader = "X-Client-Cert-Subject"
    /// Longest subject text forwarded; a longer one is refused rather than cut, as a cut name would be another name.
    static let maxForwardedSubjectBytes = 4096

    init(name: String, subjectFrom: [MTLSProviderConfig.SubjectSource], forwardCertificate: Bool) {
        self.name = name
        self.subjectFrom = subjectFrom
        self.forwardCertificate = forwardCertificate
    }

    static func make(_ config: MTLSProviderConfig, name: String) throws(ConfigError) -> MTLSProvider {
        MTLSProvider(name: name, subjectFrom: config.subjectFrom, forwardCertificate: config.forwardCertificate)
    }

    /// Tokens are not this provider's kind.
    func verify(_ token: String, now: Date) async -> AuthVerdict {
        .notApplicable
    }

    func state() async -> AuthProviderState {
        AuthProviderState(
            name: self.name, type: "mtls",
            details: ["subject_from": self.subjectFrom.map(\.rawValue), "forward_certificate": self.forwardCertificate]
        )
    }

    /// Why a verified certificate does not make an identity here; the text is fixed, safe to send and log.
    enum Refusal: String, Error, Equatable {
        case noSubject = "client certificate has no name this provider maps"
        case expired = "client certificate expired"
        case subjectTooLong = "client certificate subject too long to forward"
    }

    /// The subject the certificate gives, by `subject_from` order.
    func subject(of certificate: ClientCertificate) -> String? {
        for source in self.subjectFrom {
            let value: String?
            switch source {
            case .uri: value = certificate.uris.first
            case .dns: value = certificate.dnsNames.first
            case .email: value = certificate.emails.first
            case .cn: value = certificate.commonName
            }
            if let value, !value.isEmpty { return value }
        }
        return nil
    }

    /// The identity of a verified certificate at `now`, and the headers to forward with it.
    func identity(for certificate: ClientCertificate, now: Date) -> Result<(AuthIdentity, [(String, String)]), Refusal> {
        // TLS checked validity at the handshake; an HTTP/2 connection can outlive the certificate.
        guard certificate.notAfter > now else { return .failure(.expired) }
        guard let subject = self.subject(of: certificate) else { return .failure(.noSubject) }
        let identity = AuthIdentity(subject: subject, scopes: [], provider: self.name, expiresAt: certificate.notAfter)
        guard self.forwardCertificate else { return .success((identity, [])) }
        guard certificate.subject.utf8.count <= Self.maxForwardedSubjectBytes else { return .failure(.subjectTooLong) }
        return .success((identity, [
            (Self.fingerprintHeader, "sha256:" + certificate.fingerprint), (Self.subjectHeader, certificate.subject),
        ]))
    }
}
