import NIOHTTP1

/// Builds the HTTP/1.1 upgrade request sent to a backend from what the client asked.
///
/// Hop-by-hop headers are removed (RFC 9110 §7.6.1), the `Sec-WebSocket-*` headers are kept, and the
/// `X-Forwarded-*` headers are set by the proxy alone: the edge trusts no client copy of them.
enum ForwardedRequest {
    /// Headers that describe one hop and never cross the proxy.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate", "content-length", "host",
    ]

    /// Headers only the proxy may set; a client's copies are dropped whatever their case.
    static let proxyOwned: Set<String> = [
        "forwarded", "x-real-ip", "x-auth-subject", "x-auth-scopes", "x-auth-provider",
    ]

    /// What the proxy changes in the request, decided by policy.
    struct Edits {
        /// Target to send (the client's, minus any query token).
        var target: String
        /// `Sec-WebSocket-Protocol` entries to send (the client's, minus any token entry); nil keeps the client's.
        var subprotocols: [Substring]?
        /// Remove `Authorization` (a token the proxy consumed and the route does not forward).
        var dropAuthorization: Bool
        /// Remove the named cookie (a token the proxy consumed).
        var dropCookie: String?
        /// Identity headers to add.
        var identity: [(String, String)]
        /// Key to send when the client's transport has none (HTTP/2).
        var key: String?
    }

    /// The request head for the backend.
    static func make(from request: UpgradeRequest, edits: Edits) -> HTTPRequestHead {
        let connectionNamed = Set(
            request.headers["connection"].flatMap { HTTPToken.list($0) }.map { $0.lowercased() }
                .filter { !$0.hasPrefix("sec-websocket-") }
        )
        var headers = HTTPHeaders()
        headers.reserveCapacity(request.headers.count + 6)
        if let authority = request.authority { headers.add(name: "Host", value: authority) }
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        for (name, value) in request.headers {
            let lower = name.lowercased()
            if Self.hopByHop.contains(lower) || Self.proxyOwned.contains(lower) || lower.hasPrefix("x-forwarded-")
                || connectionNamed.contains(lower)
            {
                continue
            }
            if lower == "authorization" && edits.dropAuthorization { continue }
            if lower == "sec-websocket-protocol" && edits.subprotocols != nil { continue }
            if lower == "cookie", let cookie = edits.dropCookie {
                if let kept = Self.removingCookie(cookie, from: value) { headers.add(name: name, value: kept) }
                continue
            }
            headers.add(name: name, value: value)
        }
        if let subprotocols = edits.subprotocols, !subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", "))
        }
        if let key = edits.key {
            headers.replaceOrAdd(name: "Sec-WebSocket-Key", value: key)
            headers.replaceOrAdd(name: "Sec-WebSocket-Version", value: "13")
        }
        headers.add(name: "X-Forwarded-For", value: request.clientIP)
        headers.add(name: "X-Forwarded-Proto", value: request.scheme)
        if let authority = request.authority { headers.add(name: "X-Forwarded-Host", value: authority) }
        for (name, value) in edits.identity { headers.add(name: name, value: value) }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: edits.target, headers: headers)
    }

    /// A `Cookie` value without the named cookie; nil when nothing is left.
    static func removingCookie(_ name: String, from value: String) -> String? {
        let kept = value.split(separator: ";").filter { pair in
            let cookieName = pair.split(separator: "=", maxSplits: 1).first?.trimmingSpaces() ?? ""
            return cookieName != name
        }.map { $0.trimmingSpaces() }
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }
}
