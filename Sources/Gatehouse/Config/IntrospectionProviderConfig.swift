import GatehouseCluster
import Foundation

/// Settings of an RFC 7662 token introspection provider (`type: introspection`).
public struct IntrospectionProviderConfig: Sendable, Equatable {
    /// What a handshake gets when the endpoint gives no usable answer (down, slow, error status, garbage).
    public enum OnError: String, Sendable, Equatable {
        /// 401, as if the token were invalid.
        case unauthorized
        /// 503 with `Retry-After`: the client may try again; nothing is let through.
        case unavailable
    }

    /// The introspection endpoint (`https://`, or `http://` to a loopback host).
    public var endpoint: String
    /// Environment variables holding the client credentials sent with HTTP Basic.
    public var clientIDEnv: String
    public var clientSecretEnv: String
    /// PEM file of the CA(s) trusted for the endpoint (resolved against the config directory); nil: system roots.
    public var ca: String?
    /// Longest time an active answer is reused (it is never reused past the answer's `exp`).
    public var cacheTTL: Duration
    /// How long an inactive answer is reused.
    public var negativeCacheTTL: Duration
    /// Most answers kept.
    public var cacheSize: Int
    /// Most requests in flight toward the endpoint at once.
    public var maxConcurrent: Int
    /// Whole-request time limit: waiting for a slot, connecting, the answer's head and body.
    public var timeout: Duration
    /// Largest answer body read.
    public var maxResponseBytes: Int
    public var onError: OnError
    /// Required `iss` of active answers, when set.
    public var issuer: String?
    /// Required member of `aud` of active answers, when set.
    public var audience: String?
    /// Where the provider was declared.
    public var position: ConfigPosition
    /// Where the environment variable names and the CA were written, for errors found when the provider is built.
    public var clientIDEnvPosition: ConfigPosition
    public var clientSecretEnvPosition: ConfigPosition
    public var caPosition: ConfigPosition?

    static let defaultCacheTTL = Duration.seconds(60)
    static let defaultNegativeCacheTTL = Duration.seconds(10)
    static let defaultCacheSize = 10_000
    static let defaultMaxConcurrent = 32
    static let defaultTimeout = Duration.seconds(3)
    static let defaultMaxResponseBytes = 64 * 1024
}

extension IntrospectionProviderConfig {
    /// Reads the provider's own keys from `map` (the provider entry; `name` and `type` are read already).
    init(map: ConfigMapping, node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let endpointNode = try map.required("endpoint")
        let endpoint = try endpointNode.string("endpoint")
        if let problem = Self.endpointProblem(endpoint) { throw endpointNode.error(problem) }
        self.endpoint = endpoint
        let idNode = try map.required("client_id_env")
        self.clientIDEnv = try idNode.string("client_id_env")
        self.clientIDEnvPosition = idNode.position
        let secretNode = try map.required("client_secret_env")
        self.clientSecretEnv = try secretNode.string("client_secret_env")
        self.clientSecretEnvPosition = secretNode.position
        let caNode = map.optional("ca")
        self.ca = try caNode.map { node throws(ConfigError) in paths.resolve(try node.string("ca")) }
        self.caPosition = caNode?.position
        self.cacheTTL = try map.optional("cache_ttl")?.duration("cache_ttl", allowZero: true) ?? Self.defaultCacheTTL
        self.negativeCacheTTL =
            try map.optional("negative_cache_ttl")?.duration("negative_cache_ttl", allowZero: true) ?? Self.defaultNegativeCacheTTL
        self.cacheSize = try map.optional("cache_size")?.int("cache_size", in: 1...1_000_000) ?? Self.defaultCacheSize
        self.maxConcurrent = try map.optional("max_concurrent")?.int("max_concurrent", in: 1...1024) ?? Self.defaultMaxConcurrent
        self.timeout = try map.optional("timeout")?.duration("timeout") ?? Self.defaultTimeout
        self.maxResponseBytes =
            try map.optional("max_response_bytes")?.byteSize("max_response_bytes", in: 1024...(16 * 1024 * 1024))
            ?? Self.defaultMaxResponseBytes
        if let onErrorNode = map.optional("on_error") {
            let text = try onErrorNode.string("on_error")
            guard let onError = OnError(rawValue: text) else {
                throw onErrorNode.error("on_error must be 'unauthorized' (401) or 'unavailable' (503), found '\(text)'")
            }
            self.onError = onError
        } else {
            self.onError = .unavailable
        }
        self.issuer = try map.optional("issuer")?.string("issuer")
        self.audience = try map.optional("audience")?.string("audience")
        self.position = node.position
    }

    /// Why `endpoint` cannot be used, or nil. Tokens and client credentials travel to it, so plain HTTP is allowed
    /// only to this machine.
    static func endpointProblem(_ endpoint: String) -> String? {
        guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            return "endpoint must be an absolute URL such as https://idp.example/oauth2/introspect, found '\(endpoint)'"
        }
        guard scheme == "https" || scheme == "http" else {
            return "endpoint must use https:// (or http:// to a loopback host), found '\(scheme)://'"
        }
        if url.user != nil || url.password != nil {
            return "endpoint must not hold credentials; set client_id_env and client_secret_env"
        }
        if url.fragment != nil {
            return "endpoint must not have a #fragment"
        }
        if scheme == "http" && !LoopbackHost.contains(host) {
            return "endpoint uses http:// to '\(host)', which is not a loopback host: tokens and client credentials "
                + "would cross the network in clear; use https://"
        }
        return nil
    }
}
