/// A named source of truth for bearer tokens (`auth:` entries), referred to by routes.
public struct AuthProviderConfig: Sendable, Equatable {
    /// Unique name that routes list in `auth.providers`.
    public var name: String
    /// How tokens are verified.
    public var kind: Kind
    /// Where the provider was declared.
    public var position: ConfigPosition

    /// The verification scheme.
    public enum Kind: Sendable, Equatable {
        /// Signed JSON Web Tokens.
        case jwt(JWTProviderConfig)
        /// Opaque tokens listed by their SHA-256 in a file.
        case staticTokens(tokensFile: String, position: ConfigPosition)
    }
}

/// Settings of a JWT provider.
public struct JWTProviderConfig: Sendable, Equatable {
    /// Accepted `alg` values.
    public var algorithms: [String]
    /// Environment variable holding the HMAC secret.
    public var secretEnv: String?
    /// JWKS file with public keys selected by `kid`.
    public var jwksFile: String?
    /// Required `iss`.
    public var issuer: String?
    /// Required member of `aud`.
    public var audience: String?
    /// Clock skew tolerated on `exp` and `nbf`.
    public var leeway: Duration
    /// Refuse tokens without `exp` (`require_exp`): they would never expire, so live expiry could not end them.
    public var requireExpiry: Bool
    /// Where `algorithms`, `secret_env` and `jwks_file` were written.
    public var algorithmsPosition: ConfigPosition
    public var secretEnvPosition: ConfigPosition?
    public var jwksFilePosition: ConfigPosition?

    /// Every algorithm the proxy can verify.
    public static let supportedAlgorithms: [String] = [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]
    static let defaultLeeway = Duration.seconds(30)
}

extension AuthProviderConfig {
    init(node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("an auth provider")
        self.name = try map.required("name").string("auth provider name")
        let typeNode = try map.required("type")
        let type = try typeNode.string("type")
        switch type {
        case "jwt":
            let algorithmsNode = try map.required("algorithms")
            let algorithms = try algorithmsNode.strings("algorithms")
            guard !algorithms.isEmpty else { throw algorithmsNode.error("algorithms must list at least one algorithm") }
            for algorithm in algorithms where !JWTProviderConfig.supportedAlgorithms.contains(algorithm) {
                throw algorithmsNode.error(
                    "unsupported algorithm '\(algorithm)'; use \(JWTProviderConfig.supportedAlgorithms.joined(separator: ", "))"
                )
            }
            let secretNode = map.optional("secret_env")
            let jwksNode = map.optional("jwks_file")
            let config = JWTProviderConfig(
                algorithms: algorithms,
                secretEnv: try secretNode?.string("secret_env"),
                jwksFile: try jwksNode.map { node throws(ConfigError) in paths.resolve(try node.string("jwks_file")) },
                issuer: try map.optional("issuer")?.string("issuer"),
                audience: try map.optional("audience")?.string("audience"),
                leeway: try map.optional("leeway")?.duration("leeway", allowZero: true) ?? JWTProviderConfig.defaultLeeway,
                requireExpiry: try map.optional("require_exp")?.bool("require_exp") ?? true,
                algorithmsPosition: algorithmsNode.position,
                secretEnvPosition: secretNode?.position,
                jwksFilePosition: jwksNode?.position
            )
            let wantsHMAC = algorithms.contains { $0.hasPrefix("HS") }
            let wantsPublicKeys = algorithms.contains { !$0.hasPrefix("HS") }
            if wantsHMAC && config.secretEnv == nil {
                throw algorithmsNode.error("HS algorithms need 'secret_env' naming the variable that holds the secret")
            }
            if wantsPublicKeys && config.jwksFile == nil {
                throw algorithmsNode.error("RS, PS, ES and EdDSA algorithms need 'jwks_file'")
            }
            if !wantsHMAC, let secretNode {
                throw secretNode.error("secret_env is set but algorithms has no HS algorithm")
            }
            if !wantsPublicKeys, let jwksNode {
                throw jwksNode.error("jwks_file is set but algorithms lists only HS algorithms")
            }
            self.kind = .jwt(config)
        case "static":
            let fileNode = try map.required("tokens_file")
            self.kind = .staticTokens(tokensFile: paths.resolve(try fileNode.string("tokens_file")), position: fileNode.position)
        default:
            throw typeNode.error("type must be 'jwt' or 'static', found '\(type)'")
        }
        self.position = node.position
        try map.finish()
    }
}
