import NIOCore
import NIOHTTP1

/// A client's request to open a WebSocket, independent of the HTTP version that carried it.
///
/// HTTP/1.1 upgrades and HTTP/2 extended CONNECT streams (RFC 8441) are both turned into this, so routing,
/// policy and the backend handshake have a single code path.
public struct UpgradeRequest: Sendable {
    /// How the request reached the proxy.
    public enum Transport: String, Sendable {
        case http1 = "http/1.1"
        case http2 = "h2"
    }

    /// Request target as sent: path and optional query.
    public var target: String
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2), as sent.
    public var authority: String?
    /// All other request headers, as sent.
    public var headers: HTTPHeaders
    /// `http` or `https`: whether the client's connection was TLS.
    public var scheme: String
    /// The client's address.
    public var clientAddress: SocketAddress?
    /// Name of the listener that accepted the connection.
    public var listener: String
    /// The HTTP version carrying the WebSocket.
    public var transport: Transport
    /// The client certificate the connection's TLS handshake verified (`client_auth`); nil without one.
    public var clientCertificate: ClientCertificate? = nil

    /// The path part of the target.
    public var path: Substring {
        if let query = self.target.firstIndex(of: "?") { return self.target[..<query] }
        return self.target[...]
    }

    /// The client's IP address as text (no port), or "-" when unknown.
    public var clientIP: String {
        self.clientAddress?.ipAddress ?? "-"
    }
}
