import Foundation
import Logging
import PostgresNIO
import Synchronization

/// TLS settings from the URL's `sslmode`, and the one-shot probe behind `gatehouse check --connect`.
extension PostgresClusterStore {
    /// The TLS configuration `url.sslMode` asks for; nil for `disable`. `prefer` and `require` encrypt without
    /// verifying, like libpq; `verify-ca` checks the chain only, `verify-full` the host name (or IP) too.
    static func tlsConfiguration(for url: PostgresURL) throws -> TLSConfiguration? {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        switch url.sslMode {
        case .disable: return nil
        case .prefer, .require: tls.certificateVerification = .none
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let path = url.sslRootCert {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
            } catch {
                throw PostgresStoreError(kind: .tls, message: "cannot read sslrootcert \(path): \(error)")
            }
        }
        return tls
    }

    static func clientTLS(for url: PostgresURL) throws -> PostgresClient.Configuration.TLS {
        guard let tls = try self.tlsConfiguration(for: url) else { return .disable }
        return url.sslMode == .prefer ? .prefer(tls) : .require(tls)
    }

    static func connectionTLS(for url: PostgresURL) throws -> PostgresConnection.Configuration.TLS {
        guard let tls = try self.tlsConfiguration(for: url) else { return .disable }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw PostgresStoreError(kind: .tls, message: "\(error)")
        }
        return url.sslMode == .prefer ? .prefer(context) : .require(context)
    }

    /// Connects once (no pool, so a wrong password or a refused connection is reported at once rather than
    /// retried) and returns the server's version, e.g. `PostgreSQL 15.18`; everything bounded by `timeout`.
    public static func probe(_ url: PostgresURL, timeout: Duration) async throws -> String {
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.username, password: url.password, database: url.database,
            tls: try self.connectionTLS(for: url)
        )
        let parts = timeout.components
        configuration.options.connectTimeout = .nanoseconds(parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000)
        configuration.options.additionalStartupParameters = [("application_name", url.applicationName ?? "gatehouse")]
        let logger = Logger(label: "gatehouse.cluster.probe", factory: { _ in SwiftLogNoOpLogHandler() })
        // Closed from outside when the deadline passes: a query on a server that stopped answering would not return.
        let open = OpenConnection()
        do {
            return try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask { [configuration] in
                    let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
                    open.connection.withLock { $0 = connection }
                    // Awaited on every path: a connection released before it is closed traps in debug builds.
                    do {
                        let rows = try await connection.query("SELECT version()", logger: logger)
                        var version = ""
                        for try await text in rows.decode(String.self) { version = text }
                        try? await connection.close()
                        return version.split(separator: " ").prefix(2).joined(separator: " ")
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw PostgresStoreError(kind: .timeout, message: "no answer within \(timeout)")
                }
                defer {
                    group.cancelAll()
                    open.connection.withLock { $0?.close().whenComplete { _ in } }
                }
                guard let version = try await group.next() else {
                    throw PostgresStoreError(kind: .timeout, message: "no answer within \(timeout)")
                }
                return version
            }
        } catch {
            throw PostgresStoreError.mapped(error)
        }
    }
}

/// The probe's connection, shared with its deadline.
private final class OpenConnection: Sendable {
    let connection = Mutex<PostgresConnection?>(nil)
}
