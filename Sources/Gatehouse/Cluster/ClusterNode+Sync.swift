import Foundation
import GatehouseCluster

extension ClusterNode {
    /// Runs the node's tasks until cancelled: the store's connections, the heartbeat, registry batches and the bus.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.store.run() }
            group.addTask { await self.maintain() }
            group.addTask { await self.publishRegistry() }
            group.addTask { await self.listen() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Leaves the fleet at a graceful stop: this node's rows and leases go at once instead of after three heartbeats.
    func leave() async {
        do {
            try await StoreDeadline.run(self.config.storeTimeout) {
                try await self.store.replaceRegistry(node: self.node, rows: [])
            }
        } catch {
            self.logger.warning("could not remove this node's registry rows; they expire with its heartbeat", metadata: ["error": "\(Self.describe(error))"])
        }
    }

    /// Heartbeat loop: prepares the schema, says the node is alive, resynchronises after an outage, reloads
    /// revocations now and then (a safety net for bus messages lost while nobody listened) and reaps dead nodes.
    private func maintain() async {
        var prepared = false
        var beat = 0
        while !Task.isCancelled {
            do {
                if !prepared {
                    try await StoreDeadline.run(max(self.config.storeTimeout, .seconds(30))) { try await self.store.prepare() }
                    prepared = true
                }
                let live = try await StoreDeadline.run(self.config.storeTimeout) {
                    try await self.store.heartbeat(node: self.node, liveWithin: self.config.liveWithin)
                }
                let resync = self.state.withLock { state -> Bool in
                    state.liveNodes = Set(live)
                    return state.needsResync
                }
                self.metrics.liveNodes.record(live.count)
                // Up as soon as the store answers: leases need no resynchronised registry to be counted right.
                self.markUp()
                if resync {
                    try await self.resynchronise()
                } else if beat % 15 == 0 {
                    try await self.reloadRevocations()
                }
                if beat % 3 == 0 {
                    let dead = try await StoreDeadline.run(self.config.storeTimeout) {
                        try await self.store.reapDeadNodes(liveWithin: self.config.liveWithin)
                    }
                    if !dead.isEmpty { self.logger.notice("removed dead nodes from the registry", metadata: ["nodes": "\(dead.joined(separator: ","))"]) }
                }
            } catch is CancellationError {
                return
            } catch {
                self.storeFailed(error, during: prepared ? "heartbeat" : "schema preparation")
            }
            beat &+= 1
            try? await Task.sleep(for: self.config.heartbeat)
        }
    }

    private func markUp() {
        let wasUp = self.state.withLock { state -> Bool in
            let wasUp = state.storeUp
            state.storeUp = true
            state.storeProblem = nil
            return wasUp
        }
        self.metrics.storeUp.record(1)
        if !wasUp { self.logger.notice("cluster store available") }
    }

    /// Replaces this node's registry rows with its live connections and reloads the revocations.
    private func resynchronise() async throws {
        let rows = self.state.withLock { $0.journal.resynchronise() }
        do {
            try await StoreDeadline.run(max(self.config.storeTimeout, .seconds(5))) {
                try await self.store.replaceRegistry(node: self.node, rows: rows)
            }
            try await self.reloadRevocations()
        } catch {
            self.state.withLock { $0.needsResync = true }
            throw error
        }
        self.state.withLock { $0.needsResync = false }
        self.logger.info("registry and revocations synchronised", metadata: ["connections": "\(rows.count)"])
    }

    private func reloadRevocations() async throws {
        let now = Date()
        let stored = try await StoreDeadline.run(self.config.storeTimeout) {
            try await self.store.revocations(now: now, limit: RevocationSet.capacity)
        }
        let count = self.state.withLock { state -> Int in
            state.revocations.replaceAll(stored)
            return state.revocations.count
        }
        self.metrics.revocations.record(count)
        // Connections admitted before a revocation this node missed are closed now.
        await self.closeRevokedConnections(now: now)
    }

    /// Sends registry changes in batches, a few times a second; never on the relay path.
    private func publishRegistry() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            let batch = self.state.withLock { state -> RegistryBatch? in
                guard state.storeUp, !state.needsResync, !state.journal.isEmpty else { return nil }
                return state.journal.takeBatch(limit: Self.batchLimit)
            }
            guard let batch, !batch.isEmpty else { continue }
            do {
                try await StoreDeadline.run(max(self.config.storeTimeout, .seconds(5))) {
                    try await self.store.apply(batch, node: self.node)
                }
            } catch {
                self.state.withLock { $0.journal.restore(batch) }
                self.storeFailed(error, during: "registry update")
            }
        }
    }

    /// Listens to the bus, again and again with a backoff when the connection fails; each failure forces a
    /// resynchronisation (messages sent meanwhile are lost).
    private func listen() async {
        var backoff = Duration.milliseconds(500)
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                try await self.store.listen(
                    ready: { self.logger.info("listening to the cluster bus") },
                    handle: { envelope in await self.handle(envelope) }
                )
                return
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                self.state.withLock { $0.needsResync = true }
                self.logger.warning("cluster bus connection lost", metadata: ["error": "\(Self.describe(error))"])
            }
            if ContinuousClock.now - started > .seconds(10) { backoff = .milliseconds(500) }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}
