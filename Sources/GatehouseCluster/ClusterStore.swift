import Foundation

/// The shared store and bus of cluster mode. Every node talks to the fleet only through this protocol, so another
/// engine (Redis, Valkey) can be added without touching policy code. ``PostgresClusterStore`` is the engine shipped.
///
/// Nothing here is ever called on the relay path: nodes call it from their own tasks (heartbeat, registry batches,
/// bus) and, for leases, once per handshake of a route whose limits have `scope: cluster`.
///
/// Every method may throw when the store is unreachable; callers bound each call with a deadline (an engine may
/// wait for a connection indefinitely).
public protocol ClusterStore: Sendable {
    /// Creates or migrates the schema: versioned, idempotent, safe with several nodes starting at once.
    func prepare() async throws

    /// Runs the engine's connections until the task is cancelled (pass it to a task group or a `ServiceGroup`).
    func run() async

    /// Records that `node` is alive now and returns the nodes seen within `liveWithin` (itself included).
    func heartbeat(node: String, liveWithin: Duration) async throws -> [String]

    /// Removes nodes silent longer than `liveWithin`, with their registry rows and leases; returns their names.
    /// Also removes bus payloads older than a few minutes.
    func reapDeadNodes(liveWithin: Duration) async throws -> [String]

    /// Replaces every registry row of `node` with `rows` (at start-up and after the store comes back).
    func replaceRegistry(node: String, rows: [RegistryRow]) async throws

    /// Applies a batch of changes to `node`'s rows: upserts by id, then removals.
    func apply(_ batch: RegistryBatch, node: String) async throws

    /// Rows of live nodes matching `filter`, oldest first, at most `limit`.
    func connections(matching filter: RegistryFilter, liveWithin: Duration, limit: Int) async throws -> [RegistryRow]

    /// Connections of live nodes subscribed to `channel`.
    func countSubscribers(channel: String, liveWithin: Duration) async throws -> Int

    /// Takes a lease for `request.row` if the route's counts over live nodes stay within the request's limits,
    /// atomically with respect to other nodes' leases on the same route. A granted lease is the row itself: it
    /// disappears with a removal in ``apply(_:node:)`` or with its node.
    func acquireLease(_ request: LeaseRequest, liveWithin: Duration) async throws -> LeaseOutcome

    /// Stores a revocation; returns it once committed.
    func addRevocation(_ revocation: NewRevocation) async throws -> Revocation

    /// Revocations not expired at `now`, oldest first, at most `limit`.
    func revocations(now: Date, limit: Int) async throws -> [Revocation]

    /// Deletes a revocation; false if there was none with that id.
    func deleteRevocation(id: Int64) async throws -> Bool

    /// Sends `envelope` to every listening node, this one included. Envelopes of any size up to
    /// ``BusEnvelope/maxEncodedBytes`` are accepted (an engine with a small payload limit stores large ones aside).
    func publish(_ envelope: BusEnvelope) async throws

    /// Listens to the bus: calls `ready` once listening, then `handle` for each envelope, in order, until the task
    /// is cancelled (returns) or the connection fails (throws). Envelopes sent while nobody listened are lost:
    /// callers resynchronise after a failure.
    func listen(ready: @Sendable () async -> Void, handle: @Sendable (BusEnvelope) async -> Void) async throws
}

/// One live connection as the fleet sees it.
public struct RegistryRow: Sendable, Equatable, Codable {
    /// Cluster-unique id: `node:local-id`.
    public var id: String
    public var node: String
    public var route: String
    public var listener: String
    public var subject: String?
    public var clientIP: String
    /// `http/1.1` or `h2`.
    public var transport: String
    public var started: Date
    /// Channels the connection is subscribed to.
    public var channels: [String]

    public init(
        id: String, node: String, route: String, listener: String, subject: String?, clientIP: String, transport: String,
        started: Date, channels: [String] = []
    ) {
        self.id = id
        self.node = node
        self.route = route
        self.listener = listener
        self.subject = subject
        self.clientIP = clientIP
        self.transport = transport
        self.started = started
        self.channels = channels
    }
}

/// Which registry rows a query wants; nil fields match anything.
public struct RegistryFilter: Sendable, Equatable {
    public var route: String?
    public var subject: String?
    public var node: String?
    public var id: String?

    public init(route: String? = nil, subject: String? = nil, node: String? = nil, id: String? = nil) {
        self.route = route
        self.subject = subject
        self.node = node
        self.id = id
    }
}

/// Registry changes of one node, gathered between two publications.
public struct RegistryBatch: Sendable, Equatable {
    /// Rows inserted or replaced (by id).
    public var upserts: [RegistryRow]
    /// Ids removed (after the upserts).
    public var removals: [String]

    public init(upserts: [RegistryRow] = [], removals: [String] = []) {
        self.upserts = upserts
        self.removals = removals
    }

    public var isEmpty: Bool { self.upserts.isEmpty && self.removals.isEmpty }
}

/// A handshake asking for a fleet-wide connection slot.
public struct LeaseRequest: Sendable, Equatable {
    /// The connection to be; inserted into the registry when the lease is granted.
    public var row: RegistryRow
    /// Limits over every live node's rows of `row.route`; nil is unlimited.
    public var maxConnections: Int?
    public var maxConnectionsPerIP: Int?
    /// Only counted when `row.subject` is set.
    public var maxConnectionsPerSubject: Int?

    public init(row: RegistryRow, maxConnections: Int?, maxConnectionsPerIP: Int?, maxConnectionsPerSubject: Int?) {
        self.row = row
        self.maxConnections = maxConnections
        self.maxConnectionsPerIP = maxConnectionsPerIP
        self.maxConnectionsPerSubject = maxConnectionsPerSubject
    }
}

/// The store's answer to a ``LeaseRequest``.
public enum LeaseOutcome: Sendable, Equatable {
    case granted
    /// The limit that is full.
    case refused(LeaseLimit)
}

/// Which fleet-wide limit refused a lease.
public enum LeaseLimit: String, Sendable, Equatable, Codable {
    case route
    case clientIP = "client_ip"
    case subject
}

/// A revocation as stored: tokens matching it are refused at the handshake and their connections closed.
///
/// A revocation matches a token when every field it sets matches: `subject` equal to `sub`, `jti` equal to `jti`,
/// `issuedBefore` later than the token's `iat` (a token without `iat` matches an `issuedBefore`).
public struct Revocation: Sendable, Equatable, Codable {
    public var id: Int64
    public var subject: String?
    public var jti: String?
    public var issuedBefore: Date?
    /// When the revocation may be forgotten (no token it matches is still valid then).
    public var expires: Date
    public var created: Date

    public init(id: Int64, subject: String?, jti: String?, issuedBefore: Date?, expires: Date, created: Date) {
        self.id = id
        self.subject = subject
        self.jti = jti
        self.issuedBefore = issuedBefore
        self.expires = expires
        self.created = created
    }
}

/// A revocation to store (the store assigns id and creation time).
public struct NewRevocation: Sendable, Equatable {
    public var subject: String?
    public var jti: String?
    public var issuedBefore: Date?
    public var expires: Date

    public init(subject: String?, jti: String?, issuedBefore: Date?, expires: Date) {
        self.subject = subject
        self.jti = jti
        self.issuedBefore = issuedBefore
        self.expires = expires
    }
}
