/// The cross-site WebSocket hijacking check: the browser's `Origin` must be on the route's list.
///
/// A request without `Origin` (a non-browser client) passes; `Origin: null` passes only if `null` is listed.
/// Origin is not authentication: any non-browser client can send any value.
enum OriginPolicy {
    static func check(_ values: [String], patterns: [OriginPattern]) -> HandshakeRefusal? {
        if patterns.contains(.any) { return nil }
        guard !values.isEmpty else { return nil }
        guard values.count == 1 else { return HandshakeRefusal(.forbidden, "more than one Origin header") }
        let value = values[0].trimmingSpaces()
        let parsed = value == "null" ? nil : SerializedOrigin(parsing: String(value))
        if patterns.contains(where: { $0.matches(String(value), parsed: parsed) }) { return nil }
        return HandshakeRefusal(.forbidden, "origin not allowed")
    }
}
