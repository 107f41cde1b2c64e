import NIOCore

extension GatehouseServer {
    /// Every live relayed connection, gathered from each event loop.
    public func connections() async -> [ConnectionSnapshot] {
        var result: [ConnectionSnapshot] = []
        for loop in self.engine.allLoops {
            let snapshots = try? await loop.eventLoop.submit {
                let now = NIODeadline.now()
                return loop.connections.values.map { $0.snapshot(now: now) }
            }.get()
            result += snapshots ?? []
        }
        return result.sorted { $0.id < $1.id }
    }

    /// Closes the connections `matching` selects with 1008 "closed by administrator"; returns how many.
    public func closeConnections(matching: @escaping @Sendable (ConnectionSnapshot) -> Bool) async -> Int {
        await self.closeConnections(code: .policyViolation, reason: "closed by administrator", matching: matching)
    }

    /// Closes the connections `matching` selects with `code` and `reason`; returns how many.
    func closeConnections(
        code: WebSocketCloseCode, reason: String, matching: @escaping @Sendable (ConnectionSnapshot) -> Bool
    ) async -> Int {
        var closed = 0
        for loop in self.engine.allLoops {
            closed += (try? await loop.eventLoop.submit {
                let now = NIODeadline.now()
                var count = 0
                for connection in loop.connections.values where matching(connection.snapshot(now: now)) {
                    connection.close(code: code, reason: reason)
                    count += 1
                }
                return count
            }.get()) ?? 0
        }
        return closed
    }

    /// Brings the traffic counters of every live connection up to date (before metrics are read).
    func publishTraffic() async {
        for loop in self.engine.allLoops {
            try? await loop.eventLoop.submit { loop.publishTraffic() }.get()
        }
    }

    /// Connections currently relayed, over all loops.
    public func liveConnectionCount() async -> Int {
        var count = 0
        for loop in self.engine.allLoops {
            count += (try? await loop.eventLoop.submit { loop.connections.count }.get()) ?? 0
        }
        return count
    }

    /// Binds the admin endpoint `config` asks for, unless the current one already listens there (it is then kept,
    /// so an unchanged address is never rebound). Changes nothing live: the caller swaps the result in.
    /// - Returns: the newly bound endpoint, or nil when the current one is kept or none is wanted.
    func bindAdmin(_ config: AdminConfig, file: String) async throws(ConfigError) -> AdminServer? {
        guard let bind = config.bind else { return nil }
        let position = config.bindPosition ?? ConfigPosition(file: file, line: 1, column: 1)
        if let current = self.core.withLock({ $0.admin }), current.bind == bind {
            if case .unix(let path) = bind {
                do {
                    try AdminServer.setMode(config.socketMode, of: path)
                } catch {
                    throw position.error("admin bind \(bind): \(error)")
                }
            }
            return nil
        }
        do {
            let api = AdminAPI(server: self, requestGuard: AdminRequestGuard(bind: bind))
            return try await AdminServer.start(bind: bind, socketMode: config.socketMode, api: api, group: self.group)
        } catch {
            throw position.error("the admin endpoint cannot bind \(bind): \(error)")
        }
    }
}
