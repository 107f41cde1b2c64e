import Foundation
import NIOCore

/// What the proxy knows about one relayed connection: identity, counters and how it ended.
///
/// Owned by the connection's event loop; the access log and the admin API read it there.
final class ConnectionRecord {
    /// Process-unique id.
    let id: UInt64
    /// Listener that accepted the client.
    let listener: String
    /// Route chosen.
    let route: String
    /// Client address as `IP:PORT`.
    let client: String
    /// Client IP alone.
    let clientIP: String
    /// HTTP version that carried the upgrade.
    let transport: UpgradeRequest.Transport
    /// Authenticated subject, if a token admitted the connection.
    let subject: String?
    /// `jti` and `iat` of the token that admitted it, for revocations of live connections.
    let tokenID: String?
    let tokenIssuedAt: Date?
    /// Backend server that answered.
    let backendServer: String
    /// Name of the backend it belongs to (draining finds a server's connections by both).
    let backend: String
    /// That server's address.
    let backendAddress: BindAddress?
    /// Closed because its server was drained or left (the access record says `ended_by=drain`).
    var endedByDrain = false
    /// When the request head arrived.
    let started: NIODeadline
    /// Wall-clock start, for the admin API.
    let startedWallClock: Double

    /// Bytes read from the client and forwarded.
    var bytesFromClient = 0
    /// Bytes read from the backend and forwarded.
    var bytesFromBackend = 0
    /// Largest outbound backlog seen toward either peer (bytes queued in the proxy), for tests and the admin API.
    var peakBufferedBytes = 0

    init(
        id: UInt64, listener: String, route: String, request: UpgradeRequest, identity: AuthIdentity?, backendServer: String,
        backend: String = "", backendAddress: BindAddress? = nil, started: NIODeadline, startedWallClock: Double
    ) {
        self.id = id
        self.listener = listener
        self.route = route
        self.client = request.clientAddress.map(Self.describe) ?? "-"
        self.clientIP = request.clientIP
        self.transport = request.transport
        self.subject = identity?.subject
        self.tokenID = identity?.jti
        self.tokenIssuedAt = identity?.issuedAt
        self.backendServer = backendServer
        self.backend = backend
        self.backendAddress = backendAddress
        self.started = started
        self.startedWallClock = startedWallClock
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
