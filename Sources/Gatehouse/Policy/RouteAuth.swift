/// A route's token requirement, ready to check: providers resolved, sources turned into an extractor.
struct RouteAuth: Sendable {
    let providers: [any AuthProvider]
    let sources: [TokenSource]
    let scopes: [String]
    let realm = "gatehouse"

    var extractor: TokenExtractor { TokenExtractor(sources: self.sources) }

    func missingToken() -> HandshakeRefusal {
        HandshakeRefusal(.unauthorized, "missing bearer token", headers: [("WWW-Authenticate", "Bearer realm=\"\(self.realm)\"")])
    }

    func invalidToken(_ description: String) -> HandshakeRefusal {
        HandshakeRefusal(
            .unauthorized, "invalid token: \(description)",
            headers: [("WWW-Authenticate", "Bearer realm=\"\(self.realm)\", error=\"invalid_token\", error_description=\"\(description)\"")]
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
