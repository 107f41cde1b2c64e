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
