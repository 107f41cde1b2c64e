import Logging
import NIOCore

/// The servers of each backend follow the configuration and DNS: a built state's server sets are applied to the
/// backends' runtimes (kept across reloads), names are resolved again in the background, and servers that leave
/// have their connections closed at the backend's `drain_rate`.
extension GatehouseServer {
    /// The server state of backend `name` as currently served.
    func backendRuntime(named name: String) -> BackendRuntime? {
        self.core.withLock { $0.state.pools[name]?.runtime }
    }

    /// Makes every backend runtime list the servers of the state now served (IP-literal entries and what named
    /// entries last resolved to), then drains the servers that left. `clearDrains` (a reload) puts servers drained
    /// by the operator back. Serialized with every other change of the server sets by the core lock, so a
    /// resolution of an older state can never undo a reload.
    func applyBackendServers(clearDrains: Bool) {
        let leaving: [(BackendPool, [BindAddress])] = self.core.withLock { core in
            core.state.pools.values.compactMap { pool in
                guard let config = core.state.config.backends.first(where: { $0.name == pool.name }) else { return nil }
                pool.runtime.keepResolved(Set(pool.namedEntries.map(\.address)))
                let servers = BackendServerSet.servers(entries: pool.entries, resolved: pool.runtime.resolved)
                let gone = pool.runtime.update(servers: servers, config: config, clearDrains: clearDrains)
                return gone.isEmpty ? nil : (pool, gone)
            }
        }
        for (pool, servers) in leaving {
            for server in servers {
                self.logger.notice("backend server removed; draining its connections", metadata: ["backend": "\(pool.name)", "server": "\(server)"])
                Task { _ = await self.closeConnections(backend: pool.name, server: server, rate: pool.drainRate) }
            }
        }
    }

    /// Closes the live connections relayed to `server` of `backend`, `rate` per second with jitter (1012 to the
    /// client, 1001 to the server); returns how many. Once the server is eligible again (undrained, listed again,
    /// readmitted) the closes not yet done are called off. Health checks call it for an ejected server too.
    func closeConnections(backend: String, server: BindAddress, rate: Int) async -> Int {
        let runtime = self.backendRuntime(named: backend)
        var targets: [(loop: LoopRuntime, id: UInt64)] = []
        for loop in self.engine.allLoops {
            let ids = try? await loop.eventLoop.submit {
                loop.connections.values.filter { $0.record.backend == backend && $0.record.backendAddress == server }.map(\.record.id)
            }.get()
            targets += (ids ?? []).map { (loop, $0) }
        }
        guard !targets.isEmpty else { return 0 }
        // Interleave loops, then pace: slot i closes at about i / rate seconds.
        targets.shuffle()
        let delays = DrainPacer(rate: rate).delays(count: targets.count) { _ in Double.random(in: 0..<1) }
        let start = NIODeadline.now()
        var perLoop: [ObjectIdentifier: (loop: LoopRuntime, due: [(NIODeadline, UInt64)])] = [:]
        for (index, target) in targets.enumerated() {
            perLoop[ObjectIdentifier(target.loop), default: (target.loop, [])].due.append((start + delays[index], target.id))
        }
        for (loop, due) in perLoop.values {
            let pacer = LoopDrain(loop: loop, due: due, stillLeaving: { runtime?.server(server).map { !$0.isEligible(at: .now()) } ?? true })
            loop.eventLoop.execute { pacer.next() }
        }
        return targets.count
    }

    // MARK: Names

    /// Resolves the named servers of every backend now and then every `resolve_interval`, applying changes
    /// (new addresses join, vanished ones drain). A failed resolution keeps the last addresses. Runs until
    /// cancelled.
    func resolveBackendNames(using resolver: any BackendResolver) async {
        var resolvedAt: [String: (generation: Int, at: NIODeadline)] = [:]
        while !Task.isCancelled {
            let state = self.core.withLock { $0.state }
            var changed = false
            var wait = TimeAmount.seconds(1)
            for pool in state.pools.values.sorted(by: { $0.name < $1.name }) where !pool.namedEntries.isEmpty {
                wait = min(wait, pool.resolveInterval)
                let now = NIODeadline.now()
                if let last = resolvedAt[pool.name], last.generation == state.generation, now - last.at < pool.resolveInterval { continue }
                resolvedAt[pool.name] = (state.generation, now)
                for entry in pool.namedEntries {
                    do {
                        let addresses = try await resolver.resolve(host: entry.address.host, port: entry.address.port)
                        // An empty answer is a failure too: it must not drain every server of the name.
                        guard !addresses.isEmpty else { throw NoAddresses() }
                        let bounded = Array(addresses.prefix(BackendServerSet.maxAddressesPerName))
                        if pool.runtime.setResolved(entry.address, bounded) {
                            changed = true
                            self.logger.info(
                                "backend name resolved", metadata: ["backend": "\(pool.name)", "server": "\(entry.address)", "addresses": "\(bounded.map(\.host).joined(separator: ","))"]
                            )
                        }
                    } catch {
                        self.logger.warning(
                            "backend name does not resolve; keeping its last addresses",
                            metadata: ["backend": "\(pool.name)", "server": "\(entry.address)", "error": "\(error)"]
                        )
                    }
                }
            }
            resolvedAt = resolvedAt.filter { name, _ in state.pools[name] != nil }
            if changed { self.applyBackendServers(clearDrains: false) }
            try? await Task.sleep(nanoseconds: UInt64(max(TimeAmount.milliseconds(20), wait).nanoseconds))
        }
    }
}

/// A name that resolved to no address.
private struct NoAddresses: Error, CustomStringConvertible {
    var description: String { "no address" }
}

/// Closes one loop's share of a drain in order, one timer at a time (not one per connection).
private final class LoopDrain: @unchecked Sendable {
    // Only touched on `loop`'s event loop.
    private let loop: LoopRuntime
    private var due: [(NIODeadline, UInt64)]
    private var index = 0
    private let stillLeaving: @Sendable () -> Bool

    init(loop: LoopRuntime, due: [(NIODeadline, UInt64)], stillLeaving: @escaping @Sendable () -> Bool) {
        self.loop = loop
        self.due = due
        self.stillLeaving = stillLeaving
    }

    func next() {
        guard self.index < self.due.count else { return }
        let (deadline, id) = self.due[self.index]
        self.index += 1
        self.loop.eventLoop.scheduleTask(deadline: deadline) {
            // Undrained meanwhile: the rest stays.
            guard self.stillLeaving() else { return }
            self.loop.connections[id]?.closeForDrain()
            self.next()
        }
    }
}
