import NIOHTTP1

/// Builds the heads the proxy answers a client with from what the backend answered.
enum ClientResponse {
    /// Headers of a backend answer that describe the backend hop only, or that speak to the proxy
    /// (`Gatehouse-Channels`: the connection's channel subscriptions, never shown to the client).
    private static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length", "proxy-authenticate", ChannelName.header,
    ]

    /// The 101 for the client: the backend's headers (protocol, extensions, cookies) with the upgrade headers
    /// set by the proxy.
    /// `subprotocol` is answered when the backend selected none (the client offered only its token entry).
    static func switchingProtocols(from backend: HTTPResponseHead, subprotocol: String?) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        for (name, value) in backend.headers where !Self.hopByHop.contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        if let subprotocol, !headers.contains(name: "sec-websocket-protocol") {
            headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol)
        }
        return HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
    }

    /// A backend's refusal (403, 401, 500…) for the client, with its body length fixed.
    static func relayedRefusal(from backend: HTTPResponseHead, bodyLength: Int) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        for (name, value) in backend.headers where !Self.hopByHop.contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        headers.add(name: "Content-Length", value: String(bodyLength))
        return HTTPResponseHead(version: .http1_1, status: backend.status, headers: headers)
    }
}
