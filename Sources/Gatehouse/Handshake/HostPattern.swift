/// The `host:` of a route: an exact name or a `*.suffix` wildcard, compared case-insensitively without the port.
public enum HostPattern: Sendable, Hashable, CustomStringConvertible {
    /// Matches this name only (stored lowercase).
    case exact(String)
    /// Matches any name ending in `.suffix`, at any depth (stored lowercase, without the leading dot).
    case wildcard(suffix: String)

    /// Parses `chat.example` or `*.example`; nil when it is neither.
    public init?(parsing text: String) {
        let lower = text.lowercased()
        if lower.hasPrefix("*.") {
            let suffix = String(lower.dropFirst(2))
            guard Self.isHostName(suffix) else { return nil }
            self = .wildcard(suffix: suffix)
        } else {
            guard Self.isHostName(lower) else { return nil }
            self = .exact(lower)
        }
    }

    /// Whether `host` (already lowercased, without port) matches.
    public func matches(_ host: String) -> Bool {
        switch self {
        case .exact(let name):
            return host == name
        case .wildcard(let suffix):
            return host.utf8.count > suffix.utf8.count + 1 && host.hasSuffix("." + suffix)
        }
    }

    /// Higher is more specific: exact names beat wildcards, longer wildcards beat shorter ones.
    var specificity: Int {
        switch self {
        case .exact: return Int.max
        case .wildcard(let suffix): return suffix.utf8.count
        }
    }

    public var description: String {
        switch self {
        case .exact(let name): return name
        case .wildcard(let suffix): return "*." + suffix
        }
    }

    private static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253, !text.hasPrefix("."), !text.hasSuffix("."),
            !text.contains("..")
        else { return false }
        return text.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
    }
}

extension HostPattern {
    /// The host part of a `Host` header or `:authority`, lowercased and without port; nil when malformed.
    public static func normalizedHost(fromAuthority authority: String) -> String? {
        var text = Substring(authority)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && Self.isPort(rest.dropFirst())) else { return nil }
            return String(text[...close]).lowercased()
        }
        if let colon = text.lastIndex(of: ":") {
            let port = text[text.index(after: colon)...]
            guard Self.isPort(port) else { return nil }
            text = text[..<colon]
        }
        if text.hasSuffix(".") { text = text.dropLast() }  // "example.com." names the same host
        guard !text.isEmpty, text.utf8.allSatisfy(Self.isAuthorityByte) else { return nil }
        return text.lowercased()
    }

    /// Visible ASCII without what has no place in an authority a route matches: userinfo (`@`), path, query and
    /// fragment delimiters, escapes, backslashes and brackets.
    private static func isAuthorityByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "/"), UInt8(ascii: "@"), UInt8(ascii: "\\"), UInt8(ascii: "?"), UInt8(ascii: "#"),
            UInt8(ascii: "%"), UInt8(ascii: "["), UInt8(ascii: "]"):
            return false
        default:
            return byte > 0x20 && byte < 0x7F
        }
    }

    /// An optional port: at most five ASCII digits (Unicode digits such as "٨٠" are not a port), at most 65535.
    private static func isPort(_ text: Substring) -> Bool {
        guard text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return false }
        return text.isEmpty || (Int(text) ?? .max) <= 65535
    }
}
