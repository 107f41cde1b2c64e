import NIOHPACK
import NIOHTTP1

/// HTTP/2 forms of the proxy's answers: the `:status 200` that accepts an extended CONNECT, and refusals.
enum HTTP2ResponseBuilder {
    /// Connection-specific headers that HTTP/2 forbids (RFC 9113 §8.2.2), plus those of the HTTP/1.1 upgrade and
    /// `Gatehouse-Channels` (a backend's word to the proxy, never shown to the client).
    private static let forbidden: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "sec-websocket-accept",
        "content-length", ChannelName.header,
    ]

    /// `:status 200` with the backend's 101 headers that make sense on a stream (protocol, extensions, cookies).
    static func accepted(from backend: HTTPResponseHead, subprotocol: String?) -> HPACKHeaders {
        var headers = HPACKHeaders([(":status", "200")])
        for (name, value) in backend.headers where !Self.forbidden.contains(name.lowercased()) {
            headers.add(name: name.lowercased(), value: value)
        }
        if let subprotocol, !headers.contains(name: "sec-websocket-protocol") {
            headers.add(name: "sec-websocket-protocol", value: subprotocol)
        }
        return headers
    }

    /// A refusal's head; its body is the reason line.
    static func refusal(_ refusal: HandshakeRefusal) -> (HPACKHeaders, String) {
        let body = refusal.reason + "\n"
        var headers = HPACKHeaders([(":status", String(refusal.status.code))])
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.utf8.count))
        // A value with CR, LF or another control is never sent (defence in depth: refusal texts are fixed).
        for (name, value) in refusal.headers where !Self.forbidden.contains(name.lowercased()) && HTTPToken.isFieldValue(value) {
            headers.add(name: name.lowercased(), value: value)
        }
        return (headers, body)
    }

    /// A backend's own refusal (401, 403, 500…) relayed on the stream.
    static func relayed(_ backend: HTTPResponseHead, bodyLength: Int) -> HPACKHeaders {
        var headers = HPACKHeaders([(":status", String(backend.status.code))])
        for (name, value) in backend.headers where !Self.forbidden.contains(name.lowercased()) {
            headers.add(name: name.lowercased(), value: value)
        }
        headers.add(name: "content-length", value: String(bodyLength))
        return headers
    }
}
