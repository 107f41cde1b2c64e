import Foundation

/// `GET /auth`: each identity provider's state, in configuration order: name, type and what the provider shows
/// (for remote key sets: key ids, source URL, fetched at, next refresh, last error). Never a secret or a token:
/// providers build their state from a fixed set of facts.
extension AdminAPI {
    func handleAuth(_ request: AdminRequest) async -> AdminResponse? {
        guard request.path == "/auth" else { return nil }
        guard request.method == .GET else { return .text(.methodNotAllowed, "method not allowed") }
        var list: [[String: Any]] = []
        for provider in self.server.identity.providers {
            let state = await provider.state()
            var object = state.details.mapValues { Self.jsonValue($0) }
            object["name"] = state.name
            object["type"] = state.type
            list.append(object)
        }
        return .json(.ok, list)
    }

    /// A state value as JSON: optionals become their value or null; lists and objects are converted member by
    /// member; anything else is written as text.
    static func jsonValue(_ value: Any) -> Any {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first else { return NSNull() }
            return Self.jsonValue(wrapped.value)
        }
        switch value {
        case let text as String: return text
        case let flag as Bool: return flag
        case let number as Int: return number
        case let number as Double: return number.isFinite ? number : NSNull()
        case let list as [Any]: return list.map { Self.jsonValue($0) }
        case let object as [String: Any]: return object.mapValues { Self.jsonValue($0) }
        default: return "\(value)"
        }
    }
}
