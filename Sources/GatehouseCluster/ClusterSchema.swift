/// The PostgreSQL schema of cluster mode, as an ordered list of migrations.
///
/// ``PostgresClusterStore/prepare()`` runs the steps newer than the version recorded in `gatehouse_schema`, all in
/// one transaction under an advisory lock, so nodes starting together migrate once and a failed step leaves nothing
/// half done. Steps are only ever appended: a released step never changes. Every statement is constant SQL (one
/// statement each: the extended query protocol runs one at a time).
public enum ClusterSchema {
    /// One version of the schema.
    public struct Migration: Sendable {
        public var version: Int
        public var statements: [String]
    }

    /// Key of `pg_advisory_xact_lock` while migrating ("gatehous" in ASCII).
    static let migrationLockKey: Int64 = 0x6761_7465_686F_7573

    /// Prefix hashed with the route name for the lock that serialises leases of one route.
    static let routeLockPrefix = "gatehouse-route:"

    /// Bus payloads kept at least this long, for listeners to fetch (reaped after).
    static let busPayloadRetentionSeconds = 300

    /// Revocations kept this long past their expiry (readers filter on their own clock; this only bounds the table).
    static let revocationRetentionSeconds = 3600

    /// Created before anything else, under the lock; one row per applied version.
    static let versionTable = "CREATE TABLE IF NOT EXISTS gatehouse_schema (version int NOT NULL PRIMARY KEY)"

    public static let migrations: [Migration] = [
        Migration(
            version: 1,
            statements: [
                """
                CREATE TABLE gatehouse_nodes (
                    node text PRIMARY KEY,
                    seen timestamptz NOT NULL,
                    started timestamptz NOT NULL
                )
                """,
                """
                CREATE TABLE gatehouse_connections (
                    id text PRIMARY KEY,
                    node text NOT NULL,
                    route text NOT NULL,
                    listener text NOT NULL,
                    subject text,
                    client_ip text NOT NULL,
                    transport text NOT NULL,
                    started timestamptz NOT NULL,
                    channels text[] NOT NULL DEFAULT '{}'
                )
                """,
                "CREATE INDEX gatehouse_connections_route ON gatehouse_connections (route)",
                "CREATE INDEX gatehouse_connections_subject ON gatehouse_connections (subject)",
                "CREATE INDEX gatehouse_connections_node ON gatehouse_connections (node)",
                "CREATE INDEX gatehouse_connections_channels ON gatehouse_connections USING gin (channels)",
                """
                CREATE TABLE gatehouse_revocations (
                    id bigserial PRIMARY KEY,
                    subject text,
                    jti text,
                    issued_before timestamptz,
                    expires timestamptz NOT NULL,
                    created timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX gatehouse_revocations_expires ON gatehouse_revocations (expires)",
                """
                CREATE TABLE gatehouse_bus_payloads (
                    id bigserial PRIMARY KEY,
                    payload text NOT NULL,
                    created timestamptz NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX gatehouse_bus_payloads_created ON gatehouse_bus_payloads (created)",
            ]
        )
    ]

    /// The version a fully migrated database records.
    public static var latestVersion: Int { self.migrations.last?.version ?? 0 }

    /// The migrations to run on a database at `current`, in order.
    static func pending(after current: Int) -> [Migration] {
        self.migrations.filter { $0.version > current }
    }
}
