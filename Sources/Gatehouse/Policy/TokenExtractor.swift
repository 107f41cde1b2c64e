import Foundation
import NIOHTTP1

/// Finds the bearer token of an upgrade request in the places a route allows, and works out how to remove every
/// token carrier before the request is forwarded.
///
/// Browsers cannot set `Authorization` on a WebSocket, so the subprotocol (`bearer.T`), the query
/// (`access_token=T`) and cookies are first-class sources.
struct TokenExtractor {
    /// The prefix of a subprotocol entry that carries a token.
    static let subprotocolPrefix = "bearer."
    /// The query parameter that carries a token.
    static let queryParameter = "access_token"

    /// What extraction found.
    struct Result {
        /// The token, if any source had one.
        var token: String?
        /// The subprotocol entries the client offered, minus token entries (nil when the route does not read
        /// subprotocols, so the header is forwarded untouched).
        var remainingSubprotocols: [Substring]?
        /// The token entry offered in `Sec-WebSocket-Protocol`, if any.
        var tokenSubprotocol: String?
        /// The target with `access_token` removed (the target as sent when the route does not read the query).
        var target: String
        /// Whether the client sent `Authorization`.
        var hadAuthorization: Bool
    }

    let sources: [TokenSource]

    func extract(from request: UpgradeRequest) -> Result {
        var result = Result(token: nil, remainingSubprotocols: nil, tokenSubprotocol: nil, target: request.target, hadAuthorization: false)
        var found: [String?] = []
        for source in self.sources {
            switch source {
            case .header:
                let values = request.headers["authorization"]
                result.hadAuthorization = !values.isEmpty
                found.append(values.count == 1 ? Self.bearer(values[0]) : nil)
            case .subprotocol:
                let offered = request.headers["sec-websocket-protocol"].flatMap { HTTPToken.list($0) }
                let tokens = offered.filter { $0.hasPrefix(Self.subprotocolPrefix) }
                result.remainingSubprotocols = offered.filter { !$0.hasPrefix(Self.subprotocolPrefix) }
                result.tokenSubprotocol = tokens.first.map(String.init)
                let token = tokens.first.map { String($0.dropFirst(Self.subprotocolPrefix.count)) }
                found.append(token?.isEmpty == false ? token : nil)
            case .query:
                let (target, token) = Self.removingQueryToken(from: request.target)
                result.target = target
                found.append(token)
            case .cookie(let name):
                found.append(Self.cookie(name, in: request.headers))
            }
        }
        result.token = found.compactMap { $0 }.first
        return result
    }

    /// `Bearer T` → T (scheme case-insensitive).
    static func bearer(_ value: String) -> String? {
        let trimmed = value.trimmingSpaces()
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
        let token = trimmed.dropFirst(7).trimmingSpaces()
        return token.isEmpty || token.contains(" ") ? nil : String(token)
    }

    /// The target without `access_token` parameters (every one, however its name is percent-encoded: a backend
    /// decodes names), and the first non-empty token found. Other parameters stay as sent.
    static func removingQueryToken(from target: String) -> (String, String?) {
        guard let question = target.firstIndex(of: "?") else { return (target, nil) }
        let path = target[..<question]
        let query = target[target.index(after: question)...]
        var token: String?
        var kept: [Substring] = []
        for parameter in query.split(separator: "&", omittingEmptySubsequences: false) {
            let name = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard Self.isTokenParameter(name) else {
                kept.append(parameter)
                continue
            }
            if token == nil, let equals = parameter.firstIndex(of: "=") {
                let raw = parameter[parameter.index(after: equals)...]
                let decoded = String(raw).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
                if decoded?.isEmpty == false { token = decoded }
            }
        }
        let rebuilt = kept.isEmpty ? String(path) : String(path) + "?" + kept.joined(separator: "&")
        return (rebuilt, token)
    }

    /// Whether a query parameter name is `access_token`, as sent or percent-encoded.
    static func isTokenParameter(_ name: Substring) -> Bool {
        if name == Self.queryParameter { return true }
        guard name.contains("%") else { return false }
        return String(name).removingPercentEncoding == Self.queryParameter
    }

    /// The value of cookie `name` (compared exactly), in the first `Cookie` field and pair that has it.
    static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        for header in headers["cookie"] {
            for pair in header.split(separator: ";") {
                if let (cookieName, value) = Self.cookiePair(pair), cookieName == name {
                    return value.isEmpty ? nil : String(value)
                }
            }
        }
        return nil
    }

    /// `NAME=VALUE` of one cookie pair, trimmed; nil without `=`. The forwarded request removes cookies by the
    /// same reading, so whatever was read as a token is what is removed.
    static func cookiePair(_ pair: Substring) -> (name: Substring, value: Substring)? {
        guard let equals = pair.firstIndex(of: "=") else { return nil }
        return (pair[..<equals].trimmingSpaces(), pair[pair.index(after: equals)...].trimmingSpaces())
    }
}
