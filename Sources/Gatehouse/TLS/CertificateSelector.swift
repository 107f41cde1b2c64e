/// Picks the certificate for a TLS handshake from the server name the client sent (SNI).
///
/// Exact SAN names win over wildcard SAN names (`*.example` covers one label); without a match, or without SNI,
/// the first certificate is served.
struct CertificateSelector: Sendable {
    private let exact: [String: Int]
    private let wildcard: [String: Int]

    /// Builds the lookup from each certificate's DNS names, in configuration order.
    init(namesPerCertificate: [[String]]) {
        var exact: [String: Int] = [:]
        var wildcard: [String: Int] = [:]
        for (index, names) in namesPerCertificate.enumerated() {
            for name in names.map({ $0.lowercased() }) {
                if name.hasPrefix("*.") {
                    if wildcard[String(name.dropFirst(2))] == nil { wildcard[String(name.dropFirst(2))] = index }
                } else if exact[name] == nil {
                    exact[name] = index
                }
            }
        }
        self.exact = exact
        self.wildcard = wildcard
    }

    /// Index of the certificate to serve.
    func select(serverName: String?) -> Int {
        guard var name = serverName?.lowercased() else { return 0 }
        if name.hasSuffix(".") { name.removeLast() }
        if let index = self.exact[name] { return index }
        if let dot = name.firstIndex(of: "."), let index = self.wildcard[String(name[name.index(after: dot)...])] {
            return index
        }
        return 0
    }
}
