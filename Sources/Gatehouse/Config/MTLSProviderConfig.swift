/// Settings of a client-certificate provider (`type: mtls`).
public struct MTLSProviderConfig: Sendable, Equatable {
    /// Where the subject is taken from, in order: the first the certificate has wins.
    public var subjectFrom: [SubjectSource]
    /// Send the certificate's fingerprint and subject to the backend (`X-Client-Cert-*`).
    public var forwardCertificate: Bool
    /// Where the provider was declared.
    public var position: ConfigPosition

    /// A part of the certificate that can name the client.
    public enum SubjectSource: String, Sendable, Equatable, CaseIterable {
        /// The first URI subject alternative name (SPIFFE IDs are URIs).
        case uri
        /// The first DNS subject alternative name.
        case dns
        /// The first email (rfc822Name) subject alternative name.
        case email
        /// The subject's first common name.
        case cn
    }

    public static let defaultSubjectFrom: [SubjectSource] = [.uri, .dns, .email, .cn]
}

extension MTLSProviderConfig {
    /// Reads the provider's own keys from `map` (the provider entry; `name` and `type` are read already).
    init(map: ConfigMapping, node: ConfigNode) throws(ConfigError) {
        if let listNode = map.optional("subject_from") {
            var sources: [SubjectSource] = []
            for entry in try listNode.sequence("subject_from") {
                let text = try entry.string("each entry of subject_from")
                guard let source = SubjectSource(rawValue: text) else {
                    throw entry.error("subject_from entries are uri, dns, email or cn, found '\(text)'")
                }
                guard !sources.contains(source) else { throw entry.error("subject_from lists '\(text)' twice") }
                sources.append(source)
            }
            guard !sources.isEmpty else { throw listNode.error("subject_from must list at least one of uri, dns, email, cn") }
            self.subjectFrom = sources
        } else {
            self.subjectFrom = Self.defaultSubjectFrom
        }
        self.forwardCertificate = try map.optional("forward_certificate")?.bool("forward_certificate") ?? false
        self.position = node.position
    }
}
