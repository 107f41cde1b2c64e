import PostgresNIO

/// A failure of ``PostgresClusterStore``: what the server said (SQLSTATE and message) or why it could not be asked.
/// Never carries the URL, the password or bound values.
public struct PostgresStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The server refused a statement (`sqlState` says why).
        case server
        /// No connection, or it broke.
        case connection
        /// A bounded call did not finish in time.
        case timeout
        /// A bus envelope over ``BusEnvelope/maxEncodedBytes``.
        case tooLarge
        /// A row did not have the expected shape.
        case decoding
        /// The TLS settings could not be applied (e.g. `sslrootcert` unreadable).
        case tls
    }

    public var kind: Kind
    /// The server's SQLSTATE (e.g. `57P01` admin shutdown, `40P01` deadlock), for `.server`.
    public var sqlState: String?
    public var message: String

    public init(kind: Kind, sqlState: String? = nil, message: String) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
    }

    public var description: String {
        switch self.kind {
        case .server: "PostgreSQL error \(self.sqlState ?? "?????"): \(self.message)"
        case .connection: "PostgreSQL connection failed: \(self.message)"
        case .timeout: "PostgreSQL did not answer: \(self.message)"
        case .tooLarge: "cluster bus: \(self.message)"
        case .decoding: "PostgreSQL returned an unexpected row: \(self.message)"
        case .tls: "PostgreSQL TLS: \(self.message)"
        }
    }

    /// `error` as this type; cancellation stays `CancellationError` so callers can tell it apart.
    static func mapped(_ error: any Error) -> any Error {
        switch error {
        case is CancellationError, is PostgresStoreError:
            return error
        case let error as PostgresTransactionError:
            // The first failure is the one that explains the rest (a failed rollback follows a failed statement).
            guard let cause = error.beginError ?? error.closureError ?? error.commitError ?? error.rollbackError else {
                return PostgresStoreError(kind: .connection, message: "transaction failed")
            }
            return self.mapped(cause)
        case let error as PSQLError:
            if let info = error.serverInfo {
                return PostgresStoreError(kind: .server, sqlState: info[.sqlState], message: info[.message] ?? "\(error.code)")
            }
            if error.code == .queryCancelled, Task.isCancelled { return CancellationError() }
            var message = error.code.description
            if let underlying = error.underlying { message += ": \(underlying)" }
            return PostgresStoreError(kind: .connection, message: message)
        case let error as PostgresDecodingError:
            return PostgresStoreError(kind: .decoding, message: "column \(error.columnName): \(error.code)")
        default:
            // Pool errors (a request cancelled while waiting for a connection) and channel errors.
            if Task.isCancelled { return CancellationError() }
            return PostgresStoreError(kind: .connection, message: String(describing: error))
        }
    }
}
