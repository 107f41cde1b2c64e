/// The `path:` of a route: an exact path, or a prefix written with a trailing `/*`.
public enum PathPattern: Sendable, Hashable, CustomStringConvertible {
    /// Matches this path only.
    case exact(String)
    /// Matches paths starting with this prefix (which ends in `/`).
    case prefix(String)

    /// Parses `/ws/chat` (exact) or `/ws/*` (prefix `/ws/`); nil when it does not start with `/` or is not in the
    /// form ``RequestTarget`` gives request paths (it could never match one).
    public init?(parsing text: String) {
        if text.hasSuffix("/*") {
            let prefix = String(text.dropLast())
            guard RequestTarget.isNormalizedPath(prefix) else { return nil }
            self = .prefix(prefix)
        } else {
            guard !text.contains("*"), RequestTarget.isNormalizedPath(text) else { return nil }
            self = .exact(text)
        }
    }

    /// Why `text` is not a pattern (for a config error; meaningful only when ``init(parsing:)`` returned nil).
    public static func problem(with text: String) -> String {
        let isPrefix = text.hasSuffix("/*")
        let path = isPrefix ? String(text.dropLast()) : text
        guard path.hasPrefix("/"), isPrefix || !path.contains("*") else {
            return "path must start with '/' (exact) or end with '/*' (prefix), found '\(text)'"
        }
        if path.contains("?") || path.contains("#") {
            return "path must not hold a query or fragment, found '\(text)'"
        }
        switch RequestTarget.normalize(path) {
        case .failure(let refusal):
            return "path '\(text)' can never match: \(refusal.reason)"
        case .success(let normalized):
            // Request paths are normalised before routing, so only the normalised spelling can match.
            return "path '\(text)' can never match: request paths are normalised first, write '\(normalized + (isPrefix ? "*" : ""))'"
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
