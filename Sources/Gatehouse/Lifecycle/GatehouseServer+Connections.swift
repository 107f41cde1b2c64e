import NIOCore

extension GatehouseServer {
    /// Every live relayed connection, gathered from each event loop.
    public func connections() async -> [ConnectionSnapshot] {
        var result: [ConnectionSnapshot] = []
        for loop in self.engine.allLoops {
            let snapshots = try? await loop.eventLoop.submit {
                let now = NIODeadline.now()
                return loop.sessions.values.map { $0.snapshot(now: now) }
            }.get()
            result += snapshots ?? []
        }
        return result.sorted { $0.id < $1.id }
    }

    /// Closes the connections `matching` selects with 1008 "closed by administrator"; returns how many.
    public func closeConnections(matching: @escaping @Sendable (ConnectionSnapshot) -> Bool) async -> Int {
        var closed = 0
        for loop in self.engine.allLoops {
            closed += (try? await loop.eventLoop.submit {
                let now = NIODeadline.now()
                var count = 0
                for session in loop.sessions.values where matching(session.snapshot(now: now)) {
                    session.close(code: CloseCode.policyViolation, reason: "closed by administrator")
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
            count += (try? await loop.eventLoop.submit { loop.sessions.count }.get()) ?? 0
        }
        return count
    }

    /// Starts (or restarts on another address) the admin endpoint.
    func startAdmin(_ config: AdminConfig, tokenDigest: [UInt8]?) async throws {
        let current = self.core.withLock { $0.admin }
        if let current, current.bind == config.bind, current.tokenDigest == tokenDigest { return }
        await current?.stop()
        self.core.withLock { $0.admin = nil }
        guard let bind = config.bind else { return }
        let admin = try await AdminServer.start(
            bind: bind, api: AdminAPI(server: self, tokenDigest: tokenDigest), tokenDigest: tokenDigest, group: self.group
        )
        self.core.withLock { $0.admin = admin }
        self.logger.info("admin listening", metadata: ["address": "\(admin.channel.localAddress.map(ConnectionRecord.describe) ?? "?")"])
    }
}
