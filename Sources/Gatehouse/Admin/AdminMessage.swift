import NIOCore
import NIOHTTP1

/// A request to the admin API, already read whole (bodies are small and bounded).
struct AdminRequest: Sendable {
    var method: HTTPMethod
    /// Path without query.
    var path: String
    /// Query parameters, percent-decoded.
    var query: [String: String]
    var headers: HTTPHeaders
    /// The request body (at most ``AdminHTTPHandler/maxBody`` bytes).
    var body: [UInt8]

    init(head: HTTPRequestHead, body: [UInt8] = []) {
        self.body = body
        self.method = head.method
        self.headers = head.headers
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = String(parts[0])
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(keyValue[0]).removingPercentEncodingOrSelf
                let value = keyValue.count == 2 ? String(keyValue[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncodingOrSelf : ""
                query[key] = value
            }
        }
        self.query = query
    }
}

/// An answer of the admin API.
struct AdminResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func text(_ status: HTTPResponseStatus, _ text: String) -> AdminResponse {
        AdminResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array((text + "\n").utf8))
    }

    static func json(_ status: HTTPResponseStatus, _ object: Any) -> AdminResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return AdminResponse(status: status, contentType: "application/json", body: Array(data) + [10])
    }
}

import Foundation

extension String {
    fileprivate var removingPercentEncodingOrSelf: String {
        self.removingPercentEncoding ?? self
    }
}
