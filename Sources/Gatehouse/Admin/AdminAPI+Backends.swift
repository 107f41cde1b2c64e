import Foundation
import NIOCore

/// `GET /backends`: every backend, its balancing policy and per server: address, weight, live connections, health,
/// passive ejection, drain state and whether it takes new connections.
/// `POST /backends/{name}/servers/{host:port}/drain` and `.../undrain`: take a server out of balancing (its live
/// connections are closed at the backend's `drain_rate`) or put it back.
///
/// Also brings `gatehouse_backend_server_up` up to date before `GET /metrics` is answered (a passive ejection ends
/// with time, not with an event), then lets the request through.
extension AdminAPI {
    func handleBackends(_ request: AdminRequest) async -> AdminResponse? {
        if request.path == "/metrics" {
            let runtimes = self.server.core.withLock { Array($0.state.backendRuntimes.values) }
            self.server.healthChecker.metrics.refresh(runtimes)
            return nil
        }
        if request.path == "/backends" {
            guard request.method == .GET else { return .text(.methodNotAllowed, "method not allowed") }
            let state = self.server.core.withLock { $0.state }
            let now = NIODeadline.now()
            let list: [[String: Any]] = state.config.backends.map { backend in
                let servers = state.pools[backend.name]?.runtime.servers ?? []
                return [
                    "name": backend.name, "balance": backend.balance.rawValue,
                    "health_checks": backend.health != nil, "passive_health": backend.passive != nil,
                    "servers": servers.map { Self.json($0, now: now) },
                ]
            }
            return .json(.ok, list)
        }
        guard request.path.hasPrefix("/backends/") else { return nil }
        // /backends/{name}/servers/{host:port}/{drain|undrain}
        let parts = request.path.dropFirst("/backends/".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, parts[1] == "servers", parts[3] == "drain" || parts[3] == "undrain" else {
            return .text(.notFound, "no such endpoint")
        }
        guard request.method == .POST else { return .text(.methodNotAllowed, "method not allowed") }
        let name = parts[0].removingPercentEncoding ?? parts[0]
        let text = parts[2].removingPercentEncoding ?? parts[2]
        guard let address = BindAddress(parsing: text), address.port != 0 else {
            return .text(.badRequest, "the server must be HOST:PORT (IPv6 in brackets), found '\(text)'")
        }
        let drain = parts[3] == "drain"
        let answer = drain
            ? await self.server.drainBackendServer(backend: name, server: address)
            : await self.server.undrainBackendServer(backend: name, server: address)
        switch answer {
        case .done(let closing): return .json(.ok, ["drained": drain, "closing": closing])
        case .noSuchBackend: return .text(.notFound, "no backend '\(name)'")
        case .noSuchServer: return .text(.notFound, "backend '\(name)' has no server \(address)")
        }
    }

    /// One server as `GET /backends` shows it; `ejected_until` is in seconds from now.
    static func json(_ server: BackendRuntime.Server, now: NIODeadline) -> [String: Any] {
        let ejectedFor = server.ejectedUntil.flatMap { until -> Double? in
            guard until > now else { return nil }
            return (Double((until - now).nanoseconds) / 1e6).rounded() / 1000
        }
        return [
            "address": server.address.description, "weight": server.weight, "live": server.live, "healthy": server.healthy,
            "ejected_until": ejectedFor as Any? ?? NSNull(), "drained": server.drained,
            "drain_reason": server.drainReason as Any? ?? NSNull(), "eligible": server.isEligible(at: now),
        ]
    }
}
