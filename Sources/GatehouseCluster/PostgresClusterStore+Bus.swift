import Foundation
import PostgresNIO

/// The bus: `NOTIFY gatehouse_bus` with the JSON envelope, or with `{"ref":ID}` when the envelope is too large for a
/// notification and waits in `gatehouse_bus_payloads`.
extension PostgresClusterStore {
    /// What a notification carries for an envelope stored aside.
    struct PayloadReference: Codable {
        var ref: Int64
    }

    public func publish(_ envelope: BusEnvelope) async throws {
        let data = try envelope.encoded()
        guard data.count <= BusEnvelope.maxEncodedBytes else {
            throw PostgresStoreError(
                kind: .tooLarge, message: "envelope of \(data.count) bytes is over \(BusEnvelope.maxEncodedBytes)")
        }
        let text = String(decoding: data, as: UTF8.self)
        try await self.mapErrors {
            if data.count <= Self.inlinePayloadLimit {
                // NOTIFY takes no parameters; pg_notify does.
                try await self.execute("SELECT pg_notify(\(Self.busChannel), \(text))")
            } else {
                // One statement, one transaction: the notification is delivered at commit, when the row is visible.
                try await self.execute(
                    """
                    WITH p AS (INSERT INTO gatehouse_bus_payloads (payload) VALUES (\(text)) RETURNING id)
                    SELECT pg_notify(\(Self.busChannel), '{"ref":' || p.id || '}') FROM p
                    """)
            }
        }
    }

    public func listen(ready: @Sendable () async -> Void, handle: @Sendable (BusEnvelope) async -> Void) async throws {
        do {
            try await self.client.withConnection { connection in
                try await connection.listen(on: Self.busChannel) { notifications in
                    await ready()
                    for try await notification in notifications {
                        if let envelope = try await self.envelope(from: notification.payload, on: connection) {
                            await handle(envelope)
                        }
                    }
                }
            }
        } catch {
            if Task.isCancelled { return }
            throw PostgresStoreError.mapped(error)
        }
        // The notification stream finishes quietly only when the task is cancelled.
        if !Task.isCancelled {
            throw PostgresStoreError(kind: .connection, message: "the bus listener stopped")
        }
    }

    /// Decodes one notification, fetching a stored envelope on the listening connection; nil (counted) when it is
    /// not an envelope. Throws only when the connection fails.
    private func envelope(from payload: String, on connection: PostgresConnection) async throws -> BusEnvelope? {
        var data = Data(payload.utf8)
        if payload.hasPrefix("{\"ref\"") {
            guard let reference = try? JSONDecoder().decode(PayloadReference.self, from: data) else {
                return self.skip(payload.utf8.count, "invalid reference")
            }
            let rows = try await connection.query(
                "SELECT payload FROM gatehouse_bus_payloads WHERE id = \(reference.ref)", logger: self.logger)
            var stored: String?
            for try await text in rows.decode(String.self) { stored = text }
            guard let stored else { return self.skip(payload.utf8.count, "stored payload is gone") }
            data = Data(stored.utf8)
        }
        guard let envelope = try? BusEnvelope.decode(data) else { return self.skip(data.count, "not an envelope") }
        return envelope
    }

    private func skip(_ bytes: Int, _ why: String) -> BusEnvelope? {
        self.countMalformed()
        self.logger.warning("cluster bus notification skipped", metadata: ["reason": "\(why)", "bytes": "\(bytes)"])
        return nil
    }
}
