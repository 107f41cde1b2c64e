import GatehouseCluster
import Foundation

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
        /// Opaque tokens checked at an RFC 7662 introspection endpoint.
        case introspection(IntrospectionProviderConfig)
        /// A verified TLS client certificate as the identity.
        case mtls(MTLSProviderConfig)
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
    /// Keys fetched over HTTPS (`jwks_url`, or `oidc_issuer` through discovery) instead of `jwks_file`.
    public var remote: Remote? = nil

    /// Where and how a provider's public keys are fetched.
    public struct Remote: Sendable, Equatable {
        /// The document the keys come from.
        public enum Source: Sendable, Equatable {
            /// `jwks_url`: the JWKS itself.
            case jwksURL(String)
            /// `oidc_issuer`: `<issuer>/.well-known/openid-configuration` names the JWKS (`jwks_uri`).
            case oidcIssuer(String)
        }

        public var source: Source
        /// PEM file of the CAs trusted for the fetches (`ca`); system roots when nil.
        public var caFile: String?
        /// Bounds of the cache lifetime taken from `Cache-Control: max-age` (`jwks_refresh_min` / `jwks_refresh_max`).
        public var refreshMin: Duration = Self.defaultRefreshMin
        public var refreshMax: Duration = Self.defaultRefreshMax
        /// At most one refetch for unknown `kid`s per this interval (`jwks_refetch_min`).
        public var refetchMin: Duration = Self.defaultRefetchMin
        /// Whole fetch, body included (`jwks_timeout`).
        public var timeout: Duration = Self.defaultTimeout
        /// Largest answer read (`jwks_max_bytes`).
        public var maxBytes: Int = Self.defaultMaxBytes
        /// Where `jwks_url` or `oidc_issuer` was written.
        public var position: ConfigPosition

        public static let defaultRefreshMin = Duration.seconds(60)
        public static let defaultRefreshMax = Duration.seconds(3600)
        public static let defaultRefetchMin = Duration.seconds(30)
        public static let defaultTimeout = Duration.seconds(5)
        public static let defaultMaxBytes = 256 * 1024

        /// The URL fetched first (the JWKS or the discovery document), for logs and `GET /auth`.
        public var url: String {
            switch self.source {
            case .jwksURL(let url): return url
            case .oidcIssuer(let issuer): return Self.discoveryURL(issuer: issuer)
            }
        }

        /// OpenID Connect Discovery 1.0 §4: the issuer with any trailing slash removed, then the well-known path.
        public static func discoveryURL(issuer: String) -> String {
            (issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) + "/.well-known/openid-configuration"
        }
    }

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
            self.kind = .jwt(try JWTProviderConfig(map: map, paths: paths))
        case "static":
            let fileNode = try map.required("tokens_file")
            self.kind = .staticTokens(tokensFile: paths.resolve(try fileNode.string("tokens_file")), position: fileNode.position)
        case "introspection":
            self.kind = .introspection(try IntrospectionProviderConfig(map: map, node: node, paths: paths))
        case "mtls":
            self.kind = .mtls(try MTLSProviderConfig(map: map, node: node))
        default:
            throw typeNode.error("type must be 'jwt', 'static', 'introspection' or 'mtls', found '\(type)'")
        }
        self.position = node.position
        try map.finish()
    }
}


extension JWTProviderConfig {
    /// Reads a `type: jwt` entry's own keys from `map` (`name` and `type` are read already).
    init(map: ConfigMapping, paths: ConfigPaths) throws(ConfigError) {
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
        let issuerNode = map.optional("issuer")
        self.init(
            algorithms: algorithms,
            secretEnv: try secretNode?.string("secret_env"),
            jwksFile: try jwksNode.map { node throws(ConfigError) in paths.resolve(try node.string("jwks_file")) },
            issuer: try issuerNode?.string("issuer"),
            audience: try map.optional("audience")?.string("audience"),
            leeway: try map.optional("leeway")?.duration("leeway", allowZero: true) ?? JWTProviderConfig.defaultLeeway,
            requireExpiry: try map.optional("require_exp")?.bool("require_exp") ?? true,
            algorithmsPosition: algorithmsNode.position,
            secretEnvPosition: secretNode?.position,
            jwksFilePosition: jwksNode?.position
        )
        self.remote = try Remote(map: map, paths: paths)
        let wantsHMAC = algorithms.contains { $0.hasPrefix("HS") }
        let wantsPublicKeys = algorithms.contains { !$0.hasPrefix("HS") }
        if wantsHMAC && self.secretEnv == nil {
            throw algorithmsNode.error("HS algorithms need 'secret_env' naming the variable that holds the secret")
        }
        if !wantsHMAC, let secretNode {
            throw secretNode.error("secret_env is set but algorithms has no HS algorithm")
        }
        // Exactly one source of public keys: two would leave it unclear which one a kid is looked up in.
        if let jwksNode, let remote = self.remote {
            throw jwksNode.error("jwks_file and \(remote.keyName) are both set; use exactly one source of public keys")
        }
        if wantsPublicKeys && self.jwksFile == nil && self.remote == nil {
            throw algorithmsNode.error("RS, PS, ES and EdDSA algorithms need one of 'jwks_file', 'jwks_url' or 'oidc_issuer'")
        }
        if !wantsPublicKeys, let jwksNode {
            throw jwksNode.error("jwks_file is set but algorithms lists only HS algorithms")
        }
        if !wantsPublicKeys, let remote = self.remote {
            throw remote.position.error("\(remote.keyName) is set but algorithms lists only HS algorithms")
        }
        if case .oidcIssuer(let issuer) = self.remote?.source {
            // The discovery document's issuer must equal oidc_issuer; tokens are then checked against it.
            if let configured = self.issuer, configured != issuer, let issuerNode {
                throw issuerNode.error("issuer '\(configured)' differs from oidc_issuer '\(issuer)'; omit issuer (oidc_issuer sets it)")
            }
            self.issuer = issuer
        }
    }
}

extension JWTProviderConfig.Remote {
    /// The configuration key that chose the source.
    var keyName: String {
        switch self.source {
        case .jwksURL: return "jwks_url"
        case .oidcIssuer: return "oidc_issuer"
        }
    }

    /// Reads `jwks_url` / `oidc_issuer` and the fetch settings; nil when the provider fetches nothing.
    init?(map: ConfigMapping, paths: ConfigPaths) throws(ConfigError) {
        let urlNode = map.optional("jwks_url")
        let issuerNode = map.optional("oidc_issuer")
        let settings = ["ca", "jwks_refresh_min", "jwks_refresh_max", "jwks_refetch_min", "jwks_timeout", "jwks_max_bytes"]
        let nodes = settings.map { map.optional($0) }
        let source: Source
        let sourceNode: ConfigNode
        switch (urlNode, issuerNode) {
        case (let urlNode?, nil):
            let url = try urlNode.string("jwks_url")
            try Self.checkURL(url, key: "jwks_url", node: urlNode)
            source = .jwksURL(url)
            sourceNode = urlNode
        case (nil, let issuerNode?):
            let issuer = try issuerNode.string("oidc_issuer")
            try Self.checkURL(issuer, key: "oidc_issuer", node: issuerNode)
            source = .oidcIssuer(issuer)
            sourceNode = issuerNode
        case (_?, let issuerNode?):
            throw issuerNode.error("jwks_url and oidc_issuer are both set; use one (oidc_issuer finds the JWKS itself)")
        case (nil, nil):
            for (key, node) in zip(settings, nodes) {
                if let node { throw node.error("\(key) is set but neither jwks_url nor oidc_issuer is") }
            }
            return nil
        }
        self.init(source: source, position: sourceNode.position)
        self.caFile = try nodes[0].map { node throws(ConfigError) in paths.resolve(try node.string("ca")) }
        if let node = nodes[1] { self.refreshMin = try node.duration("jwks_refresh_min") }
        if let node = nodes[2] { self.refreshMax = try node.duration("jwks_refresh_max") }
        if let node = nodes[3] { self.refetchMin = try node.duration("jwks_refetch_min") }
        if let node = nodes[4] { self.timeout = try node.duration("jwks_timeout") }
        if let node = nodes[5] { self.maxBytes = try node.byteSize("jwks_max_bytes", in: 1024...(16 * 1024 * 1024)) }
        if self.refreshMin > self.refreshMax {
            throw (nodes[1] ?? nodes[2] ?? sourceNode).error("jwks_refresh_min is greater than jwks_refresh_max")
        }
        if self.timeout > .seconds(60) {
            throw (nodes[4] ?? sourceNode).error("jwks_timeout must be at most 60s: handshakes may wait for a fetch")
        }
    }

    /// Keys travel over HTTPS; plain HTTP only to this host itself, where nobody on the network can swap them.
    static func checkURL(_ text: String, key: String, node: ConfigNode) throws(ConfigError) {
        if let problem = Self.urlProblem(text, key: key) { throw node.error(problem) }
    }

    /// What is wrong with `text` as the URL of `key` (also applied to the `jwks_uri` a discovery document names),
    /// or nil when it may be fetched.
    static func urlProblem(_ text: String, key: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            let host = components.host, !host.isEmpty
        else {
            return "\(key) must be an absolute https:// URL, found '\(text)'"
        }
        if components.user != nil || components.password != nil {
            return "\(key) must not carry credentials (user:password@); it is shown in logs and GET /auth"
        }
        if components.fragment != nil {
            return "\(key) must not have a fragment, found '\(text)'"
        }
        switch scheme {
        case "https":
            return nil
        case "http" where LoopbackHost.contains(host):
            return nil
        case "http":
            return "\(key) uses http:// to '\(host)', which is not a loopback host; keys must be fetched over https:// "
                + "(http:// is accepted only for localhost, 127.0.0.0/8 and ::1)"
        default:
            return "\(key) must use https://, found '\(scheme)://'"
        }
    }
}
