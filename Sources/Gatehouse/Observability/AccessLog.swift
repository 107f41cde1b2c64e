import Logging
import NIOCore

/// One record per relayed connection when it ends, and one per refused handshake.
///
/// Records carry no token: the request target is logged without its query string, and no header value that
/// could hold a credential is ever logged.
struct AccessLog: Sendable {
    let logger: Logger
    let control: LogControl

    /// Longest path logged, in bytes: a client may send a path of the whole head size, thousands of times.
    static let maxPathBytes = 256
    /// Longest refusal reason logged (some quote what the client sent).
    static let maxReasonBytes = 256

    var enabled: Bool { self.control.accessLog }

    func connectionEnded(_ record: ConnectionRecord, extra: Logger.Metadata = [:]) {
        guard self.enabled else { return }
        let duration = (NIODeadline.now() - record.started).nanoseconds / 1_000_000
        var metadata: Logger.Metadata = [
            "event": "connection",
            "id": "\(record.id)",
            "listener": "\(record.listener)",
            "route": "\(record.route)",
            "client": "\(record.client)",
            "transport": "\(record.transport.rawValue)",
            "status": "101",
            "backend": "\(record.backendServer)",
            "duration_ms": "\(duration)",
            "bytes_in": "\(record.bytesFromClient)",
            "bytes_out": "\(record.bytesFromBackend)",
        ]
        if let subject = record.subject { metadata["subject"] = "\(subject)" }
        if record.endedByDrain { metadata["ended_by"] = "drain" }
        metadata.merge(extra) { $1 }
        self.logger.info("connection closed", metadata: metadata)
    }

    func refused(_ refusal: HandshakeRefusal, request: UpgradeRequest?, listener: String, client: String, route: String?, backend: String? = nil) {
        guard self.enabled else { return }
        var metadata: Logger.Metadata = [
            "event": "refused",
            "listener": "\(listener)",
            "client": "\(client)",
            "status": "\(refusal.status.code)",
            "reason": "\(LogEscaping.truncated(refusal.reason, maxBytes: Self.maxReasonBytes))",
            "route": "\(route ?? "-")",
        ]
        if let request { metadata["path"] = "\(LogEscaping.truncated(String(request.path), maxBytes: Self.maxPathBytes))" }
        if let request { metadata["transport"] = "\(request.transport.rawValue)" }
        if let backend { metadata["backend"] = "\(backend)" }
        self.logger.info("handshake refused", metadata: metadata)
    }
}
