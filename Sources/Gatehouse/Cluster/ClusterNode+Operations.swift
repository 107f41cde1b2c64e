import Foundation
import GatehouseCluster

/// The store cannot serve a fleet-wide operation now; the admin API answers 503 with the reason.
struct ClusterUnavailable: Error, CustomStringConvertible {
    let reason: String
    var description: String { "cluster store unavailable: \(self.reason)" }
}

/// What a fleet-wide command did.
struct CommandReport: Sendable, Equatable {
    /// Connections acted on (closed, delivered to, subscription changed), on every node that answered.
    var count = 0
    /// Connections whose push queue was full.
    var full = 0
    /// Nodes that answered, this one included when it took part.
    var answered: [String] = []
    /// Nodes asked that did not answer within a second: their part is unknown.
    var silent: [String] = []
    /// The outcome a node reported for a command on one connection.
    var outcome: String?
}

extension ClusterNode {
    /// Throws ``ClusterUnavailable`` unless the store answered the last heartbeat.
    func requireStore() throws(ClusterUnavailable) {
        let status = self.storeStatus
        guard status.up else { throw ClusterUnavailable(reason: status.problem ?? "unknown") }
    }

    /// Runs a store call for the admin API: 503 reasons instead of store errors, and the node marked down.
    func storeCall<T: Sendable>(_ operation: String, _ body: @escaping @Sendable () async throws -> T) async throws(ClusterUnavailable) -> T {
        try self.requireStore()
        do {
            return try await StoreDeadline.run(self.config.storeTimeout * 3, body)
        } catch {
            self.storeFailed(error, during: operation)
            throw ClusterUnavailable(reason: Self.describe(error))
        }
    }

    /// Connections of the fleet from the registry (up to a few hundred milliseconds behind reality).
    func registry(_ filter: RegistryFilter, limit: Int) async throws(ClusterUnavailable) -> [RegistryRow] {
        try await self.storeCall("registry query") {
            try await self.store.connections(matching: filter, liveWithin: self.config.liveWithin, limit: limit)
        }
    }

    /// Sends a command to the nodes concerned, does this node's part with `local`, and waits up to a second for
    /// the other nodes' answers. A command for one connection id goes to its node only.
    func command(
        for selector: ConnectionSelector?, _ message: @Sendable (String) -> BusMessage,
        local: @Sendable () async -> (count: Int, full: Int)
    ) async throws(ClusterUnavailable) -> CommandReport {
        var report = CommandReport()
        let owner = selector?.id.flatMap(ConnectionSelector.node(of:))
        if owner == nil || owner == self.node {
            let done = await local()
            report.count += done.count
            report.full += done.full
            report.answered.append(self.node)
        }
        if owner == self.node || (selector?.id != nil && owner == nil) { return report }
        // The live nodes now, not at the last heartbeat: a node that joined since must be asked too.
        let live = Set(try await self.storeCall("live nodes") {
            try await self.store.heartbeat(node: self.node, liveWithin: self.config.liveWithin)
        })
        self.state.withLock { $0.liveNodes = live }
        let expected = owner.map { live.contains($0) ? [$0] : [] } ?? live.subtracting([self.node])
        guard !expected.isEmpty else { return report }
        let request = UUID().uuidString
        let collector = ReplyCollector(expecting: expected)
        self.state.withLock { $0.waiters[request] = collector }
        defer { _ = self.state.withLock { $0.waiters.removeValue(forKey: request) } }
        do {
            try await self.publish(message(request))
        } catch {
            self.storeFailed(error, during: "bus command")
            throw ClusterUnavailable(reason: Self.describe(error))
        }
        let (replies, silent) = await collector.wait(timeout: Self.replyTimeout)
        for (node, reply) in replies.sorted(by: { $0.key < $1.key }) {
            report.count += reply.count
            report.full += reply.full
            report.outcome = reply.outcome ?? report.outcome
            report.answered.append(node)
        }
        report.silent = silent.sorted()
        return report
    }

    /// Closes matching connections on every node.
    func kick(_ selector: ConnectionSelector, code: WebSocketCloseCode, reason: String) async throws(ClusterUnavailable) -> CommandReport {
        try await self.command(
            for: selector, { .kick(request: $0, selector: selector, code: code.code, reason: reason) },
            local: { (await self.closeLocal(selector, code: code, reason: reason), 0) }
        )
    }

    /// Delivers a message to matching connections on every node.
    func push(_ selector: ConnectionSelector, _ message: PushMessage) async throws(ClusterUnavailable) -> CommandReport {
        try await self.command(
            for: selector, { .push(request: $0, selector: selector, message: message) },
            local: {
                guard let server = self.attachedServer else { return (0, 0) }
                let done = await server.pushLocal(selector, message)
                return (done.delivered, done.full)
            }
        )
    }

    /// Delivers a message to every subscriber of `channel` on every node.
    func broadcast(channel: String, _ message: PushMessage) async throws(ClusterUnavailable) -> CommandReport {
        try await self.command(
            for: nil, { .broadcast(request: $0, channel: channel, message: message) },
            local: {
                guard let server = self.attachedServer else { return (0, 0) }
                let done = await server.broadcastLocal(channel: channel, message)
                return (done.delivered, done.full)
            }
        )
    }

    /// Subscribes or unsubscribes another node's connection (this node's own go through the server directly).
    func remoteSubscription(connection id: String, channel: String, subscribed: Bool) async throws(ClusterUnavailable) -> CommandReport {
        try await self.command(
            for: ConnectionSelector(id: id), { .subscription(request: $0, connection: id, channel: channel, subscribed: subscribed) },
            local: { (0, 0) }
        )
    }

    /// Subscribers of `channel` over the fleet, from the registry.
    func subscribers(channel: String) async throws(ClusterUnavailable) -> Int {
        try await self.storeCall("channel count") {
            try await self.store.countSubscribers(channel: channel, liveWithin: self.config.liveWithin)
        }
    }

    /// Stores a revocation (answered only once committed), applies it here and tells the other nodes.
    func revoke(_ revocation: NewRevocation) async throws(ClusterUnavailable) -> Revocation {
        let stored = try await self.storeCall("revocation") { try await self.store.addRevocation(revocation) }
        await self.applyRevocation(stored)
        do {
            try await self.publish(.revoked(stored))
        } catch {
            // Stored already: the other nodes load it at their next periodic reload.
            self.logger.warning("revocation stored but not announced", metadata: ["id": "\(stored.id)", "error": "\(Self.describe(error))"])
        }
        return stored
    }

    /// Deletes a revocation everywhere; false when there was none with that id.
    func deleteRevocation(id: Int64) async throws(ClusterUnavailable) -> Bool {
        let deleted = try await self.storeCall("revocation delete") { try await self.store.deleteRevocation(id: id) }
        self.state.withLock { _ = $0.revocations.remove(id: id) }
        if deleted { try? await self.publish(.revocationDeleted(id: id)) }
        return deleted
    }

    /// Stored revocations, from the store (every node's view converges on it).
    func storedRevocations() async throws(ClusterUnavailable) -> [Revocation] {
        try await self.storeCall("revocation list") { try await self.store.revocations(now: Date(), limit: RevocationSet.capacity) }
    }
}
