import NIOHTTP1

extension HashKey {
    /// Longest key value hashed, in bytes: the key only has to be stable, a longer value adds nothing.
    static let maxValueBytes = 1024

    /// The value of this key in `request`, nil when the request lacks it (balancing then falls back to round
    /// robin): the token subject; the client IP; the first value of a header; a cookie; the first value of a query
    /// parameter (as sent, not percent-decoded).
    func value(in request: UpgradeRequest, subject: String?) -> String? {
        let value: String?
        switch self {
        case .subject:
            value = subject
        case .clientIP:
            value = request.clientAddress == nil ? nil : request.clientIP
        case .header(let name):
            value = request.headers[name].first
        case .cookie(let name):
            value = TokenExtractor.cookie(name, in: request.headers)
        case .query(let name):
            value = Self.queryValue(name, in: request.target)
        }
        guard let value, !value.isEmpty else { return nil }
        return value.utf8.count <= Self.maxValueBytes ? value : String(decoding: value.utf8.prefix(Self.maxValueBytes), as: UTF8.self)
    }

    /// The first `name=value` parameter of the target's query.
    static func queryValue(_ name: String, in target: String) -> String? {
        guard let question = target.firstIndex(of: "?") else { return nil }
        for parameter in target[target.index(after: question)...].split(separator: "&") {
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0] == name { return String(parts[1]) }
        }
        return nil
    }
}
