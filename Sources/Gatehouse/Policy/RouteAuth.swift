/// A route's token requirement, ready to check: providers resolved, sources turned into an extractor.
struct RouteAuth: Sendable {
    let providers: [any AuthProvider]
    let sources: [TokenSource]
    let scopes: [String]
    let realm = "gatehouse"
    /// The providers that verify tokens, in route order.
    let tokenProviders: [any AuthProvider]
    /// The `mtls` providers, in route order: with a verified client certificate, the first names the client.
    let certificateProviders: [MTLSProvider]

    init(providers: [any AuthProvider], sources: [TokenSource], scopes: [String]) {
        self.providers = providers
        self.sources = sources
        self.scopes = scopes
        self.certificateProviders = providers.compactMap { $0 as? MTLSProvider }
        self.tokenProviders = providers.filter { !($0 is MTLSProvider) }
    }

    var extractor: TokenExtractor { TokenExtractor(sources: self.sources) }

    func missingToken() -> HandshakeRefusal {
        HandshakeRefusal(.unauthorized, "missing bearer token", headers: [("WWW-Authenticate", "Bearer realm=\"\(self.realm)\"")])
    }

    /// A route that accepts client certificates only, reached without one (an `optional` listener, or a plain one).
    /// There is no HTTP authentication scheme for this, so no `WWW-Authenticate`.
    func missingCertificate() -> HandshakeRefusal {
        HandshakeRefusal(.unauthorized, "client certificate required")
    }

    /// A verified certificate that gives no identity here.
    func invalidCertificate(_ refusal: MTLSProvider.Refusal) -> HandshakeRefusal {
        HandshakeRefusal(.unauthorized, refusal.rawValue)
    }

    /// The description is one of a fixed set: no byte of the token reaches the response or the log.
    func invalidToken(_ rejection: TokenRejection) -> HandshakeRefusal {
        HandshakeRefusal(
            .unauthorized, "invalid token: \(rejection.rawValue)",
            headers: [
                ("WWW-Authenticate", "Bearer realm=\"\(self.realm)\", error=\"invalid_token\", error_description=\"\(rejection.rawValue)\"")
            ]
        )
    }

    func insufficientScope(_ missing: [String]) -> HandshakeRefusal {
        let scope = self.scopes.joined(separator: " ")
        return HandshakeRefusal(
            .forbidden, "insufficient scope: needs \(missing.joined(separator: " "))",
            headers: [("WWW-Authenticate", "Bearer realm=\"\(self.realm)\", error=\"insufficient_scope\", scope=\"\(scope)\"")]
        )
    }
}
