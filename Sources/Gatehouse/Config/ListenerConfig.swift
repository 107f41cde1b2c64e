/// One socket the proxy accepts client connections on (`listeners:` entries).
public struct ListenerConfig: Sendable, Equatable {
    /// Unique name, used in logs and metrics.
    public var name: String
    /// Address to bind.
    public var bind: BindAddress
    /// TLS termination; nil for a plain listener.
    public var tls: ListenerTLSConfig?
    /// Maximum concurrent HTTP/2 streams per connection (RFC 8441 WebSockets).
    public var maxConcurrentStreams: Int
    /// Where the listener was declared.
    public var position: ConfigPosition

    static let defaultMaxConcurrentStreams = 100
}

/// TLS settings of a listener.
public struct ListenerTLSConfig: Sendable, Equatable {
    /// Certificate and key files; the server name (SNI) picks among them by their SAN names, the first is the default.
    public var certificates: [CertificateFiles]
    /// Generate an ephemeral self-signed development certificate at start-up.
    public var selfSigned: Bool
    /// Lowest TLS version accepted.
    public var minVersion: TLSMinimumVersion
    /// ALPN protocols offered, in preference order.
    public var alpn: [String]
    /// TLS 1.2 cipher suites offered (TLS 1.3 suites are fixed by BoringSSL).
    public var ciphers: CipherSuites = .intermediate
    /// Client certificates (`client_auth`); nil when the listener asks for none.
    public var clientAuth: ClientAuthConfig? = nil
}

/// Client certificate verification on a TLS listener (`tls.client_auth`).
public struct ClientAuthConfig: Sendable, Equatable {
    /// Whether a client must present a certificate.
    public enum Mode: String, Sendable, Equatable {
        /// The TLS handshake fails without a valid certificate.
        case required
        /// A client without a certificate is let through; one presenting an invalid certificate is not.
        case optional
    }

    /// PEM file of the certificate authorities client certificates must chain to (absolute once loaded).
    public var ca: String
    /// `required` unless written otherwise.
    public var mode: Mode
    /// Where `client_auth` was written.
    public var position: ConfigPosition
}

/// A certificate chain and its private key, both PEM files (absolute paths once loaded).
public struct CertificateFiles: Sendable, Equatable {
    /// PEM certificate chain, leaf first.
    public var cert: String
    /// PEM private key.
    public var key: String
}

/// The lowest TLS version a listener accepts; nothing older than 1.2 exists here by design.
public enum TLSMinimumVersion: String, Sendable, Equatable {
    case v1_2 = "1.2"
    case v1_3 = "1.3"
}

extension ListenerConfig {
    init(node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("a listener")
        self.name = try map.required("name").string("listener name")
        self.bind = try map.required("bind").bindAddress("listener bind")
        self.tls = try map.optional("tls").map { node throws(ConfigError) in
            try ListenerTLSConfig(node: node, paths: paths)
        }
        self.maxConcurrentStreams =
            try map.optional("max_concurrent_streams")?.int("max_concurrent_streams", in: 1...10_000)
            ?? Self.defaultMaxConcurrentStreams
        self.position = node.position
        try map.finish()
    }
}

extension ListenerTLSConfig {
    static let supportedALPN: Set<String> = ["h2", "http/1.1"]
    static let defaultALPN = ["h2", "http/1.1"]

    init(node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("tls")
        var certificates: [CertificateFiles] = []
        if let list = map.optional("certificates") {
            for item in try list.sequence("certificates") {
                let pair = try item.mapping("a certificate entry")
                let cert = try pair.required("cert").string("cert")
                let key = try pair.required("key").string("key")
                try pair.finish()
                certificates.append(CertificateFiles(cert: paths.resolve(cert), key: paths.resolve(key)))
            }
        }
        self.certificates = certificates
        self.selfSigned = try map.optional("self_signed")?.bool("self_signed") ?? false
        if let versionNode = map.optional("min_version") {
            let text = try versionNode.string("min_version")
            guard let version = TLSMinimumVersion(rawValue: text) else {
                throw versionNode.error("min_version must be \"1.2\" or \"1.3\" (older TLS is never accepted), found '\(text)'")
            }
            self.minVersion = version
        } else {
            self.minVersion = .v1_2
        }
        if let alpnNode = map.optional("alpn") {
            let alpn = try alpnNode.strings("alpn")
            for name in alpn where !Self.supportedALPN.contains(name) {
                throw alpnNode.error("alpn entries must be h2 or http/1.1, found '\(name)'")
            }
            guard alpn.contains("http/1.1") || alpn.contains("h2"), Set(alpn).count == alpn.count else {
                throw alpnNode.error("alpn must list h2 and/or http/1.1, each once")
            }
            self.alpn = alpn
        } else {
            self.alpn = Self.defaultALPN
        }
        if let ciphersNode = map.optional("ciphers") {
            guard self.minVersion == .v1_2 else {
                throw ciphersNode.error("ciphers applies to TLS 1.2 only, and this listener accepts TLS 1.3 only (TLS 1.3 suites are fixed)")
            }
            // A YAML list of names, or one OpenSSL-style string of names separated by ':'.
            let entries: [String]
            if case .sequence = ciphersNode.node {
                entries = try ciphersNode.strings("ciphers")
            } else {
                entries = [try ciphersNode.string("ciphers")]
            }
            do {
                self.ciphers = try CipherSuites(parsing: entries)
            } catch {
                throw ciphersNode.error("ciphers: \(error.message)")
            }
        }
        self.clientAuth = try map.optional("client_auth").map { node throws(ConfigError) in
            try ClientAuthConfig(node: node, paths: paths)
        }
        if self.certificates.isEmpty && !self.selfSigned {
            throw node.error("tls needs 'certificates' or 'self_signed: true'")
        }
        try map.finish()
    }
}

extension ClientAuthConfig {
    init(node: ConfigNode, paths: ConfigPaths) throws(ConfigError) {
        let map = try node.mapping("client_auth")
        self.ca = paths.resolve(try map.required("ca").string("ca"))
        // Without `mode` a certificate is required: the stricter reading of a listener that names a CA.
        if let modeNode = map.optional("mode") {
            let text = try modeNode.string("mode")
            guard let mode = Mode(rawValue: text) else {
                throw modeNode.error("mode must be 'required' or 'optional', found '\(text)'")
            }
            self.mode = mode
        } else {
            self.mode = .required
        }
        self.position = node.position
        try map.finish()
    }
}
