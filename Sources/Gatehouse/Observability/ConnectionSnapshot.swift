import Foundation
import NIOCore

/// A point-in-time view of one relayed connection, safe to hand across threads (admin API, tests).
public struct ConnectionSnapshot: Sendable, Equatable {
    /// Process-unique id.
    public var id: UInt64
    /// Listener that accepted it.
    public var listener: String
    /// Route it was admitted on.
    public var route: String
    /// Client `IP:PORT`.
    public var client: String
    /// Authenticated subject.
    public var subject: String?
    /// `jti` and `iat` of the admitting token (matched against revocations; not shown by the admin API).
    public var tokenID: String?
    public var tokenIssuedAt: Date?
    /// `http/1.1` or `h2`.
    public var transport: String
    /// Backend server.
    public var backend: String
    /// Seconds since the request head arrived.
    public var ageSeconds: Double
    /// Bytes read from the client.
    public var bytesFromClient: Int
    /// Bytes read from the backend.
    public var bytesFromBackend: Int
    /// Data messages from the client.
    public var messagesFromClient: Int
    /// Data messages toward the client: the backend's, plus the proxy's pushes.
    public var messagesFromBackend: Int
    /// Messages of the proxy's own written to the client (pushes and channel broadcasts).
    public var messagesPushed: Int = 0
    /// Channels the connection is subscribed to, sorted.
    public var channels: [String] = []
    /// Largest backlog queued toward either peer so far.
    public var peakBufferedBytes: Int
    /// Whether reading from the client is paused because the backend is not taking bytes.
    public var clientReadPaused: Bool
    /// Whether reading from the backend is paused because the client is not taking bytes.
    public var backendReadPaused: Bool
}

extension RelayConnection {
    /// The connection as it is now. Call on its event loop.
    func snapshot(now: NIODeadline) -> ConnectionSnapshot {
        let record = self.record
        return ConnectionSnapshot(
            id: record.id, listener: record.listener, route: record.route, client: record.client,
            subject: record.subject, tokenID: record.tokenID, tokenIssuedAt: record.tokenIssuedAt, transport: record.transport.rawValue, backend: record.backendServer,
            ageSeconds: Double((now - record.started).nanoseconds) / 1e9, bytesFromClient: record.bytesFromClient,
            bytesFromBackend: record.bytesFromBackend, messagesFromClient: self.machine.fromClient.messages,
            messagesFromBackend: self.machine.messagesToClient, messagesPushed: self.machine.pushedMessages,
            channels: self.channels.sorted(), peakBufferedBytes: record.peakBufferedBytes,
            clientReadPaused: self.machine.client.readPaused, backendReadPaused: self.machine.backend.readPaused
        )
    }
}

