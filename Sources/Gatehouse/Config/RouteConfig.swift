/// Which backend serves an upgrade request, chosen by Host and path, and the policy applied to it (`routes:`).
public struct RouteConfig: Sendable, Equatable {
    /// Unique name, used in logs and metrics.
    public var name: String
    /// Host to match; nil matches any Host.
    public var host: HostPattern?
    /// Path to match.
    public var path: PathPattern
    /// Name of the backend that serves the route.
    public var backend: String
    /// Origins allowed to open WebSockets on the route.
    public var origins: [OriginPattern]
    /// Limits, the defaults overridden by the route's own keys.
    public var limits: LimitsConfig
    /// Token policy; nil when the route needs no token.
    public var auth: RouteAuthConfig?
    /// Pass the client's `Authorization` header on to the backend.
    public var forwardToken: Bool
    /// Close connections when the JWT that admitted them expires.
    public var enforceExpiry: Bool
    /// Forward client headers whose names hold `_` (`allow_underscore_headers`); by default they are dropped, as
    /// CGI-style backends read `X_Auth_Subject` as `X-Auth-Subject`.
    public var allowUnderscoreHeaders: Bool
    /// What the proxy does about permessage-deflate (`compression`).
    public var compression: CompressionMode
    /// Where the route was declared.
    public var position: ConfigPosition
    /// Where the route's `backend` key was written (dangling names are reported there).
    public var backendPosition: ConfigPosition
}

/// What the proxy does about permessage-deflate on a route (`compression`).
public enum CompressionMode: String, Sendable, CaseIterable {
    /// Inflate compressed messages (without keeping them) to hold them to `max_message_bytes`; the compressed
    /// bytes are forwarded unchanged.
    case inspect
    /// Forward compressed messages as they are: `max_message_bytes` counts their compressed size only.
    case passthrough
    /// Remove permessage-deflate from the client's offer, so the session is not compressed.
    case strip
}

/// The token requirement of a route.
public struct RouteAuthConfig: Sendable, Equatable {
    /// Providers tried in order; the first that accepts the token wins.
    public var providers: [String]
    /// Where the token may come from.
    public var tokenSources: [TokenSource]
    /// Scopes the token must all carry.
    public var scopes: [String]
    /// Where `providers` was written.
    public var providersPosition: ConfigPosition

    static let defaultSources: [TokenSource] = [.header, .subprotocol]
}

/// A place in the upgrade request that may carry a bearer token.
public enum TokenSource: Sendable, Hashable, CustomStringConvertible {
    /// `Authorization: Bearer T`.
    case header
    /// A `bearer.T` entry in `Sec-WebSocket-Protocol`.
    case subprotocol
    /// `access_token=T` in the query string.
    case query
    /// The named cookie.
    case cookie(String)

    public var description: String {
        switch self {
        case .header: return "header"
        case .subprotocol: return "subprotocol"
        case .query: return "query"
        case .cookie(let name): return "cookie:\(name)"
        }
    }
}

extension RouteConfig {
    init(node: ConfigNode, defaults: LimitsConfig) throws(ConfigError) {
        let map = try node.mapping("a route")
        self.name = try map.required("name").string("route name")
        if let hostNode = map.optional("host") {
            let text = try hostNode.string("host")
            guard let host = HostPattern(parsing: text) else {
                throw hostNode.error("host must be a name like chat.example or *.example, found '\(text)'")
            }
            self.host = host
        } else {
            self.host = nil
        }
        let pathNode = try map.required("path")
        let pathText = try pathNode.string("path")
        guard let path = PathPattern(parsing: pathText) else {
            throw pathNode.error(PathPattern.problem(with: pathText))
        }
        self.path = path
        let backendNode = try map.required("backend")
        self.backend = try backendNode.string("backend")
        self.backendPosition = backendNode.position
        let originsNode = try map.required("origins")
        var origins: [OriginPattern] = []
        for entry in try originsNode.sequence("origins") {
            let text = try entry.string("an origin")
            guard let pattern = OriginPattern(parsing: text) else {
                throw entry.error(
                    "origins entries must be \"*\", \"null\", an origin like https://app.example or "
                        + "https://*.app.example, found '\(text)'"
                )
            }
            origins.append(pattern)
        }
        guard !origins.isEmpty else {
            throw originsNode.error("origins must not be empty; use [\"*\"] to allow any origin")
        }
        self.origins = origins
        self.limits = try map.optional("limits").map { node throws(ConfigError) in
            try LimitsConfig(node: node, over: defaults, isRoute: true)
        } ?? defaults
        self.auth = try map.optional("auth").map { node throws(ConfigError) in try RouteAuthConfig(node: node) }
        if self.auth == nil {
            // Counted per token subject: a route without tokens has none. Its own key is a mistake worth
            // reporting; one inherited from defaults.limits is meant for the authenticated routes only.
            if let limitsNode = map.optional("limits"),
                let position = try limitsNode.mapping("limits").keyPosition("max_connections_per_subject")
            {
                throw position.error("max_connections_per_subject needs a route with auth (route '\(self.name)' has none)")
            }
            self.limits.maxConnectionsPerSubject = nil
        }
        self.forwardToken = try map.optional("forward_token")?.bool("forward_token") ?? false
        self.enforceExpiry = try map.optional("enforce_expiry")?.bool("enforce_expiry") ?? true
        self.allowUnderscoreHeaders = try map.optional("allow_underscore_headers")?.bool("allow_underscore_headers") ?? false
        if let compressionNode = map.optional("compression") {
            let text = try compressionNode.string("compression")
            guard let mode = CompressionMode(rawValue: text) else {
                throw compressionNode.error("compression must be inspect, passthrough or strip, found '\(text)'")
            }
            self.compression = mode
        } else {
            self.compression = .inspect
        }
        self.position = node.position
        try map.finish()
    }
}

extension RouteAuthConfig {
    init(node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping("auth")
        let providersNode = try map.required("providers")
        self.providers = try providersNode.strings("providers")
        self.providersPosition = providersNode.position
        guard !self.providers.isEmpty else { throw providersNode.error("providers must name at least one provider") }
        if let sourcesNode = map.optional("token_sources") {
            var sources: [TokenSource] = []
            for entry in try sourcesNode.sequence("token_sources") {
                let text = try entry.string("a token source")
                switch text {
                case "header": sources.append(.header)
                case "subprotocol": sources.append(.subprotocol)
                case "query": sources.append(.query)
                case _ where text.hasPrefix("cookie:") && text.count > "cookie:".count:
                    let name = String(text.dropFirst("cookie:".count))
                    guard name.utf8.allSatisfy({ HTTPToken.isTokenCharacter($0) }) else {
                        throw entry.error("cookie name '\(name)' has characters a cookie name cannot have")
                    }
                    sources.append(.cookie(name))
                default:
                    throw entry.error("token_sources entries are header, subprotocol, query or cookie:NAME, found '\(text)'")
                }
            }
            guard !sources.isEmpty else { throw sourcesNode.error("token_sources must not be empty") }
            self.tokenSources = sources
        } else {
            self.tokenSources = Self.defaultSources
        }
        let scopesNode = map.optional("scopes")
        self.scopes = try scopesNode?.strings("scopes") ?? []
        // Scopes are echoed in `WWW-Authenticate` (scope="…"): only RFC 6749 scope-token characters.
        for scope in self.scopes where !Self.isScopeToken(scope) {
            throw (scopesNode ?? node).error("scope '\(scope)' may hold only visible characters other than '\"' and '\\' (RFC 6749)")
        }
        try map.finish()
    }

    /// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
    static func isScopeToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0) }
    }
}
