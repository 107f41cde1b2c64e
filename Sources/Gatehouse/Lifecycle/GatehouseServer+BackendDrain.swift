/// What draining (or undraining) one backend server did.
enum BackendDrainAnswer: Sendable, Equatable {
    /// Done: the server takes no new connection (or takes them again); `closing` live connections are being closed
    /// at the backend's `drain_rate`.
    case done(closing: Int)
    case noSuchBackend
    case noSuchServer
}

extension GatehouseServer {
    /// Takes `server` of `backend` out of balancing and closes its live connections at the backend's `drain_rate`
    /// (1012 to the client, 1001 to the server); it stays out until undrained or reloaded (a reload clears
    /// operator drains).
    func drainBackendServer(backend: String, server: BindAddress) async -> BackendDrainAnswer {
        guard let pool = self.core.withLock({ $0.state.pools[backend] }) else { return .noSuchBackend }
        guard pool.runtime.setDrained(server, true) else { return .noSuchServer }
        self.logger.notice("backend server drained", metadata: ["backend": "\(backend)", "server": "\(server)"])
        return .done(closing: await self.closeConnections(backend: backend, server: server, rate: pool.drainRate))
    }

    /// Puts a drained server back into balancing (its slow start begins); closes not yet done are called off.
    func undrainBackendServer(backend: String, server: BindAddress) async -> BackendDrainAnswer {
        guard let pool = self.core.withLock({ $0.state.pools[backend] }) else { return .noSuchBackend }
        guard pool.runtime.setDrained(server, false) else { return .noSuchServer }
        self.logger.notice("backend server undrained", metadata: ["backend": "\(backend)", "server": "\(server)"])
        return .done(closing: 0)
    }
}
