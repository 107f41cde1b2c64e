import NIOHTTP1

/// An HTTP answer that refuses an upgrade, with the one-line reason sent as the body and logged.
public struct HandshakeRefusal: Error, Sendable, Equatable {
    /// Status sent to the client.
    public var status: HTTPResponseStatus
    /// One line of text explaining the refusal; never contains a token.
    public var reason: String
    /// Extra headers (`Sec-WebSocket-Version`, `Retry-After`, `WWW-Authenticate`).
    public var headers: [(String, String)]

    /// Creates a refusal.
    public init(_ status: HTTPResponseStatus, _ reason: String, headers: [(String, String)] = []) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    public static func == (lhs: HandshakeRefusal, rhs: HandshakeRefusal) -> Bool {
        lhs.status == rhs.status && lhs.reason == rhs.reason
            && lhs.headers.map { "\($0.0):\($0.1)" } == rhs.headers.map { "\($0.0):\($0.1)" }
    }

    /// The response head and body that carry this refusal over HTTP/1.1.
    func responseHead(closing: Bool) -> (HTTPResponseHead, String) {
        let body = self.reason + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        // Defence in depth: a value with CR, LF or another control would split the head.
        for (name, value) in self.headers where HTTPToken.isFieldValue(value) { headers.add(name: name, value: value) }
        if closing { headers.add(name: "Connection", value: "close") }
        return (HTTPResponseHead(version: .http1_1, status: self.status, headers: headers), body)
    }
}

extension HandshakeRefusal {
    static func notFound() -> HandshakeRefusal {
        HandshakeRefusal(.notFound, "no route for this host and path")
    }

    static func upgradeRequired(_ reason: String) -> HandshakeRefusal {
        HandshakeRefusal(.upgradeRequired, reason, headers: [("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")])
    }

    static func badRequest(_ reason: String) -> HandshakeRefusal {
        HandshakeRefusal(.badRequest, reason)
    }

    static func headTooLarge(limit: Int) -> HandshakeRefusal {
        HandshakeRefusal(.requestHeaderFieldsTooLarge, "request head larger than \(limit) bytes")
    }

    static func tooManyForSubject() -> HandshakeRefusal {
        HandshakeRefusal(.tooManyRequests, "too many connections for this subject", headers: [("Retry-After", "5")])
    }

    static func draining() -> HandshakeRefusal {
        HandshakeRefusal(.serviceUnavailable, "server shutting down", headers: [("Retry-After", "5")])
    }
}
