/// An entry of a route's `origins:` list, compared by RFC 6454 serialisation.
///
/// Scheme and host compare case-insensitively; the default port of the scheme is the same as no port.
public enum OriginPattern: Sendable, Hashable, CustomStringConvertible {
    /// `*`: any origin, including a missing one and `null`.
    case any
    /// `null`: the opaque origin browsers send from sandboxed frames and `file:` pages.
    case null
    /// One origin.
    case exact(SerializedOrigin)
    /// `scheme://*.suffix[:port]`: exactly one label in front of `suffix`.
    case wildcard(scheme: String, suffix: String, port: Int)

    /// Parses a configuration entry.
    public init?(parsing text: String) {
        if text == "*" {
            self = .any
            return
        }
        if text == "null" {
            self = .null
            return
        }
        guard let origin = SerializedOrigin(parsing: text, allowWildcard: true) else { return nil }
        if origin.host.hasPrefix("*.") {
            self = .wildcard(scheme: origin.scheme, suffix: String(origin.host.dropFirst(2)), port: origin.port)
        } else {
            self = .exact(origin)
        }
    }

    /// Whether the request's `Origin` value matches (nil value handled by the caller).
    public func matches(_ value: String, parsed: SerializedOrigin?) -> Bool {
        switch self {
        case .any:
            return true
        case .null:
            return value == "null"
        case .exact(let origin):
            return parsed == origin
        case .wildcard(let scheme, let suffix, let port):
            guard let parsed, parsed.scheme == scheme, parsed.port == port else { return false }
            guard parsed.host.hasSuffix("." + suffix) else { return false }
            let label = parsed.host.dropLast(suffix.utf8.count + 1)
            return !label.isEmpty && !label.contains(".")
        }
    }

    public var description: String {
        switch self {
        case .any: return "*"
        case .null: return "null"
        case .exact(let origin): return origin.description
        case .wildcard(let scheme, let suffix, let port):
            return SerializedOrigin(scheme: scheme, host: "*." + suffix, port: port).description
        }
    }
}

/// A tuple origin (scheme, host, port) normalised as RFC 6454 serialises it.
public struct SerializedOrigin: Sendable, Hashable, CustomStringConvertible {
    /// Lowercased scheme.
    public var scheme: String
    /// Lowercased host (IPv6 in brackets).
    public var host: String
    /// Port, with the scheme's default filled in (0 for a scheme without one).
    public var port: Int

    init(scheme: String, host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// Parses `scheme://host[:port]` with nothing after it; nil otherwise.
    public init?(parsing text: String, allowWildcard: Bool = false) {
        guard let separator = text.range(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound].lowercased()
        guard !scheme.isEmpty, scheme.utf8.allSatisfy({ HTTPToken.isTokenCharacter($0) }) else { return nil }
        var authority = Substring(text[separator.upperBound...])
        if authority.hasSuffix("/") { authority = authority.dropLast() }  // tolerate a trailing slash in config
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@"), !authority.contains("?"),
            !authority.contains("#")
        else { return nil }
        var host = authority
        var port: Int?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let value = Int(rest.dropFirst()), (1...65535).contains(value) else { return nil }
                port = value
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let value = Int(authority[authority.index(after: colon)...]), (1...65535).contains(value) else {
                return nil
            }
            port = value
        }
        let lowerHost = host.lowercased()
        guard !lowerHost.isEmpty else { return nil }
        let allowed = lowerHost.utf8.allSatisfy { byte in
            HTTPToken.isTokenCharacter(byte) || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
                || byte == UInt8(ascii: ":")
        }
        guard allowed, allowWildcard || !lowerHost.contains("*") else { return nil }
        if lowerHost.contains("*") {
            // Only a leading one-label wildcard is meaningful.
            guard lowerHost.hasPrefix("*."), !lowerHost.dropFirst(2).contains("*"), lowerHost.count > 2 else {
                return nil
            }
        }
        self.scheme = scheme
        self.host = lowerHost
        self.port = port ?? Self.defaultPort(scheme) ?? 0  // 0: a scheme without a default port, none given
    }

    static func defaultPort(_ scheme: String) -> Int? {
        switch scheme {
        case "http", "ws": return 80
        case "https", "wss": return 443
        default: return nil
        }
    }

    public var description: String {
        if self.port == 0 || Self.defaultPort(self.scheme) == self.port { return "\(self.scheme)://\(self.host)" }
        return "\(self.scheme)://\(self.host):\(self.port)"
    }
}
