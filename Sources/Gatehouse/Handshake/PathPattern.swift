/// The `path:` of a route: an exact path, or a prefix written with a trailing `/*`.
public enum PathPattern: Sendable, Hashable, CustomStringConvertible {
    /// Matches this path only.
    case exact(String)
    /// Matches paths starting with this prefix (which ends in `/`).
    case prefix(String)

    /// Parses `/ws/chat` (exact) or `/ws/*` (prefix `/ws/`); nil when it does not start with `/`.
    public init?(parsing text: String) {
        guard text.hasPrefix("/"), !text.contains("?"), !text.contains("#") else { return nil }
        if text.hasSuffix("/*") {
            self = .prefix(String(text.dropLast()))
        } else {
            guard !text.contains("*") else { return nil }
            self = .exact(text)
        }
    }

    /// Whether a request path (without query) matches.
    public func matches(_ path: Substring) -> Bool {
        switch self {
        case .exact(let exact): return path == exact
        case .prefix(let prefix): return path.hasPrefix(prefix)
        }
    }

    /// Higher is more specific: exact paths beat prefixes, longer prefixes beat shorter ones.
    var specificity: Int {
        switch self {
        case .exact: return Int.max
        case .prefix(let prefix): return prefix.utf8.count
        }
    }

    public var description: String {
        switch self {
        case .exact(let exact): return exact
        case .prefix(let prefix): return prefix + "*"
        }
    }
}
