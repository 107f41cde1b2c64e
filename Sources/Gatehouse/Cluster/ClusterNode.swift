import Foundation
import GatehouseCluster
import Logging
import NIOCore
import Synchronization

/// This process as a member of the fleet: it keeps the in-memory revocation set and the journal of registry
/// changes, takes fleet-wide leases at handshakes, and runs the tasks that talk to the ``ClusterStore`` (heartbeat,
/// registry batches, the bus).
///
/// The relay never waits for it: the hooks it implements only touch memory under a lock, once per handshake or
/// connection, never per frame. Leases are the one store round trip, on handshakes of `scope: cluster` routes.
final class ClusterNode: ClusterHooks, Sendable {
    let node: String
    let config: ClusterConfig
    let store: any ClusterStore
    let logger: Logger
    let metrics: ClusterMetrics
    let state = Mutex(State())
    /// The server whose connections the bus acts on (weak: the server owns this node through its engine).
    private let server = Mutex<WeakServer>(WeakServer())

    struct State {
        var revocations = RevocationSet()
        var journal = RegistryJournal()
        /// Nodes the last heartbeat saw alive, this one included.
        var liveNodes: Set<String> = []
        var storeUp = false
        /// Why the store is considered down (for 503 answers and logs); never contains the URL.
        var storeProblem: String? = "not connected yet"
        /// Set when the registry or revocations may have missed changes: the next heartbeat replaces them.
        var needsResync = true
        /// Bus commands waiting for answers, by request id.
        var waiters: [String: ReplyCollector] = [:]
    }

    struct WeakServer {
        weak var server: GatehouseServer?
    }

    /// How long a command waits for the other nodes' answers.
    static let replyTimeout = Duration.seconds(1)
    /// Registry changes sent per store call.
    static let batchLimit = 1000

    init(config: ClusterConfig, store: any ClusterStore, logger: Logger, metrics: ClusterMetrics) {
        self.node = config.node
        self.config = config
        self.store = store
        var logger = logger
        logger[metadataKey: "node"] = "\(config.node)"
        self.logger = logger
        self.metrics = metrics
    }

    func attach(_ server: GatehouseServer) {
        self.server.withLock { $0.server = server }
    }

    var attachedServer: GatehouseServer? {
        self.server.withLock { $0.server }
    }

    /// Whether the store answered the last heartbeat, and why not.
    var storeStatus: (up: Bool, problem: String?) {
        self.state.withLock { ($0.storeUp, $0.storeProblem) }
    }

    // MARK: ClusterHooks

    func isRevoked(_ identity: AuthIdentity, now: Date) -> Bool {
        self.state.withLock { $0.revocations.matches(subject: identity.subject, jti: identity.jti, issuedAt: identity.issuedAt, now: now) != nil }
    }

    func acquireLease(_ request: LeaseRequest, on eventLoop: EventLoop) -> EventLoopFuture<Void> {
        guard self.storeStatus.up else { return self.withoutStore(on: eventLoop, request: request) }
        let store = self.store
        let liveWithin = self.config.liveWithin
        return eventLoop.makeFutureWithTask {
            try await StoreDeadline.run(self.config.storeTimeout) { try await store.acquireLease(request, liveWithin: liveWithin) }
        }.flatMap { outcome -> EventLoopFuture<Void> in
            switch outcome {
            case .granted:
                self.metrics.leasesGranted.increment()
                self.state.withLock { $0.journal.leased(request.row.id) }
                return eventLoop.makeSucceededVoidFuture()
            case .refused(let limit):
                self.metrics.leasesRefused.increment()
                return eventLoop.makeFailedFuture(Self.refusal(limit))
            }
        }.flatMapError { error in
            if error is HandshakeRefusal { return eventLoop.makeFailedFuture(error) }
            // The store may have granted it after the deadline: the release then deletes that row too.
            self.state.withLock { $0.journal.leased(request.row.id) }
            self.storeFailed(error, during: "lease")
            return self.withoutStore(on: eventLoop, request: request)
        }
    }

    func opened(_ row: RegistryRow) {
        self.state.withLock { $0.journal.upsert(row) }
    }

    func released(connectionID: UInt64) {
        let id = self.clusterID(connectionID)
        self.state.withLock { $0.journal.remove(id) }
    }

    func channelsChanged(connectionID: UInt64, channels: [String]) {
        let id = self.clusterID(connectionID)
        self.state.withLock { $0.journal.setChannels(id, channels) }
    }

    // MARK: Decisions

    /// `on_store_error`: local counts were checked already, so `open` admits; `closed` refuses.
    private func withoutStore(on eventLoop: EventLoop, request: LeaseRequest) -> EventLoopFuture<Void> {
        self.metrics.leasesWithoutStore.increment()
        switch self.config.onStoreError {
        case .open:
            return eventLoop.makeSucceededVoidFuture()
        case .closed:
            return eventLoop.makeFailedFuture(
                HandshakeRefusal(.serviceUnavailable, "cluster store unavailable", headers: [("Retry-After", "5")])
            )
        }
    }

    static func refusal(_ limit: LeaseLimit) -> HandshakeRefusal {
        switch limit {
        case .route:
            return HandshakeRefusal(.serviceUnavailable, "route is at its connection limit", headers: [("Retry-After", "5")])
        case .clientIP:
            return HandshakeRefusal(.tooManyRequests, "too many connections from this address", headers: [("Retry-After", "5")])
        case .subject:
            return HandshakeRefusal(.tooManyRequests, "too many connections for this subject", headers: [("Retry-After", "5")])
        }
    }

    /// Marks the store down after a failed call; the next successful heartbeat brings it back and resynchronises.
    func storeFailed(_ error: Error, during operation: String) {
        self.metrics.storeErrors.increment()
        let problem = Self.describe(error)
        let wasUp = self.state.withLock { state -> Bool in
            let wasUp = state.storeUp
            state.storeUp = false
            state.storeProblem = problem
            state.needsResync = true
            return wasUp
        }
        self.metrics.storeUp.record(0)
        if wasUp {
            self.logger.error("cluster store unavailable", metadata: ["operation": "\(operation)", "error": "\(problem)"])
        }
    }

    /// An error as operators may read it: store errors carry no URL or password (the store's errors are built so).
    static func describe(_ error: Error) -> String {
        if let deadline = error as? StoreDeadline.Exceeded { return deadline.description }
        return String(describing: error).prefix(300).description
    }
}
