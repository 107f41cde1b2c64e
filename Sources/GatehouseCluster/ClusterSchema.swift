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
        ),
        // A lease in one round trip: the route's lock, the counts and the insert happen in one call, so the lock is
        // held for microseconds instead of five network round trips (measured: 525 → see benchmarks/README.md).
        // Each statement of a VOLATILE plpgsql function takes a new snapshot under READ COMMITTED, so the counts
        // see every lease committed before the lock was granted. The rule is LeaseCounts.outcome's.
        Migration(
            version: 2,
            statements: [
                """
                CREATE FUNCTION gatehouse_acquire_lease(
                    p_lock text, p_live_secs float8, p_id text, p_node text, p_route text, p_listener text,
                    p_subject text, p_client_ip text, p_transport text, p_started timestamptz, p_channels text[],
                    p_max_route bigint, p_max_ip bigint, p_max_subject bigint,
                    OUT route_count bigint, OUT ip_count bigint, OUT subject_count bigint, OUT granted boolean)
                LANGUAGE plpgsql VOLATILE AS $$
                BEGIN
                    PERFORM pg_advisory_xact_lock(hashtext(p_lock));
                    INSERT INTO gatehouse_nodes (node, seen, started) VALUES (p_node, now(), now())
                        ON CONFLICT (node) DO NOTHING;
                    SELECT count(*),
                           count(*) FILTER (WHERE c.client_ip = p_client_ip),
                           count(*) FILTER (WHERE c.subject = p_subject)
                      INTO route_count, ip_count, subject_count
                      FROM gatehouse_connections c JOIN gatehouse_nodes n ON n.node = c.node
                     WHERE c.route = p_route AND c.id <> p_id
                       AND n.seen > now() - make_interval(secs => p_live_secs);
                    granted := (p_max_route IS NULL OR route_count < p_max_route)
                           AND (p_max_ip IS NULL OR ip_count < p_max_ip)
                           AND (p_subject IS NULL OR p_max_subject IS NULL OR subject_count < p_max_subject);
                    IF granted THEN
                        INSERT INTO gatehouse_connections (id, node, route, listener, subject, client_ip, transport, started, channels)
                        VALUES (p_id, p_node, p_route, p_listener, p_subject, p_client_ip, p_transport, p_started, p_channels)
                        ON CONFLICT (id) DO UPDATE SET node = EXCLUDED.node, route = EXCLUDED.route,
                            listener = EXCLUDED.listener, subject = EXCLUDED.subject, client_ip = EXCLUDED.client_ip,
                            transport = EXCLUDED.transport, started = EXCLUDED.started, channels = EXCLUDED.channels;
                    END IF;
                END
                $$
                """
            ]
        ),
    ]

    /// The version a fully migrated database records.
    public static var latestVersion: Int { self.migrations.last?.version ?? 0 }

    /// The migrations to run on a database at `current`, in order.
    static func pending(after current: Int) -> [Migration] {
        self.migrations.filter { $0.version > current }
    }
}
