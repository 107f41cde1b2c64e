import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The cluster store on PostgreSQL (postgres-nio): registry, leases and revocations in `gatehouse_*` tables
/// (``ClusterSchema``), the bus on `LISTEN`/`NOTIFY`.
///
/// Liveness is judged by the database clock (`now()`), so nodes with skewed clocks agree on who is alive. Every value
/// is a bound parameter. Calls wait for a pooled connection while the server is unreachable (the pool retries): bound
/// them with a deadline. ``run()`` must be running (once) for any call to proceed.
public final class PostgresClusterStore: ClusterStore {
    /// The `NOTIFY` channel of the bus (lower case: postgres-nio quotes it).
    public static let busChannel = "gatehouse_bus"
    /// Largest payload sent inline: the server refuses 8000 bytes; above this the envelope goes to `gatehouse_bus_payloads`.
    static let inlinePayloadLimit = 7900
    /// Registry rows per `INSERT` statement (9 parameters each; the protocol allows 65 535).
    static let rowsPerStatement = 500
    /// Bound on names returned by ``heartbeat(node:liveWithin:)`` and ``reapDeadNodes(liveWithin:)``.
    static let maxNodes = 10_000

    /// The URL without its password, for logs.
    public let redactedURL: String
    let client: PostgresClient
    let logger: Logger
    private let malformed = Atomic<Int>(0)

    /// - Parameters:
    ///   - url: Where the database is and how to reach it.
    ///   - logger: For the store's own messages and the pool's background events.
    ///   - maximumConnections: Pool size; the bus listener pins one connection.
    ///   - connectTimeout: Per connection attempt (the pool retries after it).
    /// - Throws: ``PostgresStoreError`` (`.tls`) when `sslrootcert` cannot be read.
    public init(
        url: PostgresURL, logger: Logger, maximumConnections: Int = 8, connectTimeout: Duration = .seconds(5)
    ) throws {
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.username, password: url.password, database: url.database,
            tls: try Self.clientTLS(for: url)
        )
        configuration.options.maximumConnections = max(2, maximumConnections)
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = [("application_name", url.applicationName ?? "gatehouse")]
        self.redactedURL = url.redacted
        self.logger = logger
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    /// Bus notifications skipped because they could not be decoded (or their stored payload was gone).
    public var malformedBusPayloads: Int { self.malformed.load(ordering: .relaxed) }

    func countMalformed() {
        self.malformed.add(1, ordering: .relaxed)
    }

    public func run() async {
        await self.client.run()
    }

    // MARK: Schema

    public func prepare() async throws {
        try await self.mapErrors {
            try await self.client.withTransaction(logger: self.logger) { connection in
                try await self.execute("SELECT pg_advisory_xact_lock(\(ClusterSchema.migrationLockKey))", on: connection)
                try await self.execute(PostgresQuery(unsafeSQL: ClusterSchema.versionTable), on: connection)
                var current = 0
                let rows = try await connection.query(
                    "SELECT coalesce(max(version), 0)::int8 FROM gatehouse_schema", logger: self.logger)
                for try await version in rows.decode(Int.self) { current = version }
                if current > ClusterSchema.latestVersion {
                    // A newer node migrated already; migrations only add, so this one can still work.
                    self.logger.warning(
                        "cluster schema is newer than this gatehouse",
                        metadata: ["version": "\(current)", "known": "\(ClusterSchema.latestVersion)"])
                }
                for migration in ClusterSchema.pending(after: current) {
                    for statement in migration.statements {
                        try await self.execute(PostgresQuery(unsafeSQL: statement), on: connection)
                    }
                    try await self.execute("INSERT INTO gatehouse_schema (version) VALUES (\(migration.version))", on: connection)
                    self.logger.info("cluster schema migrated", metadata: ["version": "\(migration.version)"])
                }
            }
        }
    }

    // MARK: Nodes

    public func heartbeat(node: String, liveWithin: Duration) async throws -> [String] {
        try await self.mapErrors {
            try await self.execute(
                """
                INSERT INTO gatehouse_nodes (node, seen, started) VALUES (\(node), now(), now())
                ON CONFLICT (node) DO UPDATE SET seen = now()
                """)
            let rows = try await self.client.query(
                """
                SELECT node FROM gatehouse_nodes WHERE seen > now() - make_interval(secs => \(Self.seconds(liveWithin)))
                ORDER BY node LIMIT \(Self.maxNodes)
                """, logger: self.logger)
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            return names
        }
    }

    public func reapDeadNodes(liveWithin: Duration) async throws -> [String] {
        try await self.mapErrors {
            let rows = try await self.client.query(
                """
                WITH dead AS (
                    DELETE FROM gatehouse_nodes WHERE seen <= now() - make_interval(secs => \(Self.seconds(liveWithin)))
                    RETURNING node
                ), gone AS (
                    DELETE FROM gatehouse_connections c USING dead WHERE c.node = dead.node
                )
                SELECT node FROM dead ORDER BY node LIMIT \(Self.maxNodes)
                """, logger: self.logger)
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            // Rows whose node row is gone (deleted by hand) would never be reaped otherwise. Rows are only written
            // together with their node row, so this cannot race with a node that is publishing.
            try await self.execute(
                """
                DELETE FROM gatehouse_connections c
                WHERE NOT EXISTS (SELECT 1 FROM gatehouse_nodes n WHERE n.node = c.node)
                """)
            try await self.execute(
                """
                DELETE FROM gatehouse_bus_payloads
                WHERE created < now() - make_interval(secs => \(Double(ClusterSchema.busPayloadRetentionSeconds)))
                """)
            try await self.execute(
                """
                DELETE FROM gatehouse_revocations
                WHERE expires < now() - make_interval(secs => \(Double(ClusterSchema.revocationRetentionSeconds)))
                """)
            return names
        }
    }

    // MARK: Registry

    public func replaceRegistry(node: String, rows: [RegistryRow]) async throws {
        try await self.mapErrors {
            try await self.client.withTransaction(logger: self.logger) { connection in
                try await self.ensureNode(node, on: connection)
                try await self.execute("DELETE FROM gatehouse_connections WHERE node = \(node)", on: connection)
                for statement in try Self.upsertStatements(Self.lastByID(rows), node: node) {
                    try await self.execute(statement, on: connection)
                }
            }
        }
    }

    public func apply(_ batch: RegistryBatch, node: String) async throws {
        guard !batch.isEmpty else { return }
        try await self.mapErrors {
            try await self.client.withTransaction(logger: self.logger) { connection in
                if !batch.upserts.isEmpty {
                    try await self.ensureNode(node, on: connection)
                    for statement in try Self.upsertStatements(Self.lastByID(batch.upserts), node: node) {
                        try await self.execute(statement, on: connection)
                    }
                }
                if !batch.removals.isEmpty {
                    try await self.execute(
                        "DELETE FROM gatehouse_connections WHERE node = \(node) AND id = ANY(\(batch.removals))",
                        on: connection)
                }
            }
        }
    }

    public func connections(matching filter: RegistryFilter, liveWithin: Duration, limit: Int) async throws -> [RegistryRow] {
        guard limit > 0 else { return [] }
        return try await self.mapErrors {
            // `$n IS NULL OR ...`: unnamed statements are planned with their values, so unused filters fold away.
            let rows = try await self.client.query(
                """
                SELECT c.id, c.node, c.route, c.listener, c.subject, c.client_ip, c.transport, c.started, c.channels
                FROM gatehouse_connections c JOIN gatehouse_nodes n ON n.node = c.node
                WHERE n.seen > now() - make_interval(secs => \(Self.seconds(liveWithin)))
                  AND (\(filter.route)::text IS NULL OR c.route = \(filter.route))
                  AND (\(filter.subject)::text IS NULL OR c.subject = \(filter.subject))
                  AND (\(filter.node)::text IS NULL OR c.node = \(filter.node))
                  AND (\(filter.id)::text IS NULL OR c.id = \(filter.id))
                ORDER BY c.started, c.id
                LIMIT \(limit)
                """, logger: self.logger)
            var result: [RegistryRow] = []
            for try await row in rows.decode(
                (String, String, String, String, String?, String, String, Date, [String]).self)
            {
                result.append(
                    RegistryRow(
                        id: row.0, node: row.1, route: row.2, listener: row.3, subject: row.4, clientIP: row.5,
                        transport: row.6, started: row.7, channels: row.8))
            }
            return result
        }
    }

    public func countSubscribers(channel: String, liveWithin: Duration) async throws -> Int {
        try await self.mapErrors {
            let rows = try await self.client.query(
                """
                SELECT count(*) FROM gatehouse_connections c JOIN gatehouse_nodes n ON n.node = c.node
                WHERE n.seen > now() - make_interval(secs => \(Self.seconds(liveWithin)))
                  AND c.channels @> ARRAY[\(channel)::text]
                """, logger: self.logger)
            var count = 0
            for try await value in rows.decode(Int.self) { count = value }
            return count
        }
    }

    // MARK: Leases

    public func acquireLease(_ request: LeaseRequest, liveWithin: Duration) async throws -> LeaseOutcome {
        let row = request.row
        let lock = ClusterSchema.routeLockPrefix + row.route
        let maxRoute = request.maxConnections
        let maxIP = request.maxConnectionsPerIP
        let maxSubject = request.maxConnectionsPerSubject
        return try await self.mapErrors {
            // One statement in its own transaction: gatehouse_acquire_lease (schema version 2) takes the route's lock,
            // counts the live leases and inserts the row when the limits allow, all in one round trip.
            let rows = try await self.client.query(
                """
                SELECT route_count, ip_count, subject_count, granted FROM gatehouse_acquire_lease(
                    \(lock), \(Self.seconds(liveWithin)), \(row.id), \(row.node), \(row.route), \(row.listener), \(row.subject),
                    \(row.clientIP), \(row.transport), \(row.started), \(row.channels), \(maxRoute), \(maxIP), \(maxSubject))
                """, logger: self.logger)
            var outcome = LeaseOutcome.refused(.route)
            for try await (route, clientIP, subject, granted) in rows.decode((Int, Int, Int, Bool).self) {
                // The function's verdict; LeaseCounts names the limit that refused, by the same rule.
                outcome = granted ? .granted : LeaseCounts(route: route, clientIP: clientIP, subject: subject).outcome(for: request)
                if outcome == .granted && !granted { outcome = .refused(.route) }
            }
            return outcome
        }
    }

    // MARK: Revocations

    public func addRevocation(_ revocation: NewRevocation) async throws -> Revocation {
        try await self.mapErrors {
            let rows = try await self.client.query(
                """
                INSERT INTO gatehouse_revocations (subject, jti, issued_before, expires)
                VALUES (\(revocation.subject), \(revocation.jti), \(revocation.issuedBefore), \(revocation.expires))
                RETURNING id, subject, jti, issued_before, expires, created
                """, logger: self.logger)
            var stored: Revocation?
            for try await row in rows.decode((Int64, String?, String?, Date?, Date, Date).self) {
                stored = Revocation(
                    id: row.0, subject: row.1, jti: row.2, issuedBefore: row.3, expires: row.4, created: row.5)
            }
            guard let stored else { throw PostgresStoreError(kind: .decoding, message: "INSERT returned no row") }
            return stored
        }
    }

    public func revocations(now: Date, limit: Int) async throws -> [Revocation] {
        guard limit > 0 else { return [] }
        return try await self.mapErrors {
            let rows = try await self.client.query(
                """
                SELECT id, subject, jti, issued_before, expires, created FROM gatehouse_revocations
                WHERE expires > \(now) ORDER BY created, id LIMIT \(limit)
                """, logger: self.logger)
            var result: [Revocation] = []
            for try await row in rows.decode((Int64, String?, String?, Date?, Date, Date).self) {
                result.append(
                    Revocation(id: row.0, subject: row.1, jti: row.2, issuedBefore: row.3, expires: row.4, created: row.5))
            }
            return result
        }
    }

    public func deleteRevocation(id: Int64) async throws -> Bool {
        try await self.mapErrors {
            let rows = try await self.client.query(
                "DELETE FROM gatehouse_revocations WHERE id = \(id) RETURNING id", logger: self.logger)
            var deleted = false
            for try await _ in rows { deleted = true }
            return deleted
        }
    }

    // MARK: Helpers

    /// Makes sure `node` has a nodes row (a node reaped while cut off may publish before its next heartbeat);
    /// an existing row is left alone: only the heartbeat moves `seen`.
    func ensureNode(_ node: String, on connection: PostgresConnection) async throws {
        try await self.execute(
            """
            INSERT INTO gatehouse_nodes (node, seen, started) VALUES (\(node), now(), now())
            ON CONFLICT (node) DO NOTHING
            """, on: connection)
    }

    /// Runs an effect-only statement and drains it (errors only show up while reading the result).
    func execute(_ query: PostgresQuery, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(query, logger: self.logger)
        for try await _ in rows {}
    }

    func execute(_ query: PostgresQuery) async throws {
        let rows = try await self.client.query(query, logger: self.logger)
        for try await _ in rows {}
    }

    func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw PostgresStoreError.mapped(error)
        }
    }

    /// Multi-row upserts of `rows` (ids unique), at most ``rowsPerStatement`` rows each, every value bound.
    static func upsertStatements(_ rows: [RegistryRow], node: String) throws -> [PostgresQuery] {
        var statements: [PostgresQuery] = []
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + Self.rowsPerStatement, rows.count)]
            start += chunk.count
            var bindings = PostgresBindings(capacity: chunk.count * 9)
            var values: [String] = []
            values.reserveCapacity(chunk.count)
            for (offset, row) in chunk.enumerated() {
                let first = offset * 9
                values.append("(" + (1...9).map { "$\(first + $0)" }.joined(separator: ", ") + ")")
                bindings.append(row.id)
                bindings.append(node)
                bindings.append(row.route)
                bindings.append(row.listener)
                bindings.append(row.subject)
                bindings.append(row.clientIP)
                bindings.append(row.transport)
                bindings.append(row.started)
                bindings.append(row.channels)
            }
            let sql = """
                INSERT INTO gatehouse_connections (id, node, route, listener, subject, client_ip, transport, started, channels)
                VALUES \(values.joined(separator: ", "))
                ON CONFLICT (id) DO UPDATE SET node = EXCLUDED.node, route = EXCLUDED.route,
                    listener = EXCLUDED.listener, subject = EXCLUDED.subject, client_ip = EXCLUDED.client_ip,
                    transport = EXCLUDED.transport, started = EXCLUDED.started, channels = EXCLUDED.channels
                """
            statements.append(PostgresQuery(unsafeSQL: sql, binds: bindings))
        }
        return statements
    }

    /// One row per id, the last one given, in order of first appearance (one statement may not update a row twice).
    static func lastByID(_ rows: [RegistryRow]) -> [RegistryRow] {
        var index: [String: Int] = [:]
        var result: [RegistryRow] = []
        result.reserveCapacity(rows.count)
        for row in rows {
            if let at = index[row.id] {
                result[at] = row
            } else {
                index[row.id] = result.count
                result.append(row)
            }
        }
        return result
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
