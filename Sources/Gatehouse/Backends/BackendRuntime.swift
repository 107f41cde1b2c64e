import NIOCore
import Synchronization

/// One backend's servers as they are now, kept across reloads (by backend name): each server's live relayed
/// connections, active and passive health, drain state and when it joined (slow start). Balancing reads it; the
/// relay, the backend connector, the health checker, the admin API and reloads write it.
///
/// Touched once per handshake and once per connection end, never per frame; one lock per backend.
final class BackendRuntime: Sendable {
    let name: String
    private let state: Mutex<State>

    /// A server as balancing and the admin API see it.
    struct Server: Sendable, Equatable {
        var address: BindAddress
        var weight: Int
        /// Live relayed connections (not pending handshakes).
        var live: Int
        /// Handshakes in flight that chose this server first (least connections counts them too).
        var pending: Int = 0
        /// Active checks say up (always true without `health`).
        var healthy: Bool
        /// Ejected by passive health until then.
        var ejectedUntil: NIODeadline?
        /// Drained by the operator, or leaving (removed by a reload or DNS): takes no new connection.
        var drained: Bool
        /// Why it is drained: `operator`, `removed`, `health`.
        var drainReason: String?
        /// Since when it may take connections (added, readmitted, undrained): the start of its slow start.
        var eligibleSince: NIODeadline

        func isEligible(at now: NIODeadline) -> Bool {
            self.healthy && !self.drained && !(self.ejectedUntil.map { now < $0 } ?? false)
        }
    }

    struct State {
        var servers: [BindAddress: Server] = [:]
        /// Configuration order, for round robin and stable listings.
        var order: [BindAddress] = []
        var health: [BindAddress: HealthCounter] = [:]
        var passive: [BindAddress: PassiveHealth] = [:]
        /// Addresses each named entry (`host:port`) resolved to last, kept across reloads.
        var resolved: [BindAddress: [BindAddress]] = [:]
    }

    init(name: String) {
        self.name = name
        self.state = Mutex(State())
    }

    /// Makes the server set `servers` (address → weight) under `config`'s health settings. Servers no longer listed
    /// are marked drained with reason `removed` and returned (their connections are to be drained, then they go once
    /// they hold none); servers still listed keep their live counts and health. `clearDrains` (a reload) puts
    /// operator-drained servers back.
    func update(
        servers: [(BindAddress, Int)], config: BackendConfig, clearDrains: Bool = false, now: NIODeadline = .now()
    ) -> [BindAddress] {
        self.state.withLock { state in
            let wanted = Set(servers.map(\.0))
            var leaving: [BindAddress] = []
            for address in state.order where !wanted.contains(address) {
                if var server = state.servers[address], !(server.drained && server.drainReason == "removed") {
                    server.drained = true
                    server.drainReason = "removed"
                    state.servers[address] = server
                    leaving.append(address)
                }
            }
            for (address, weight) in servers {
                if var server = state.servers[address] {
                    server.weight = weight
                    if server.drainReason == "removed" || (clearDrains && server.drainReason == "operator") {
                        server.drained = false
                        server.drainReason = nil
                        server.eligibleSince = now
                    }
                    state.servers[address] = server
                } else {
                    state.servers[address] = Server(
                        address: address, weight: weight, live: 0, healthy: true, ejectedUntil: nil, drained: false,
                        drainReason: nil, eligibleSince: now
                    )
                }
                if let health = config.health {
                    if state.health[address].map({ $0.rise != health.rise || $0.fall != health.fall }) ?? true {
                        state.health[address] = HealthCounter(rise: health.rise, fall: health.fall, startUp: state.servers[address]?.healthy ?? true)
                    }
                } else {
                    state.health[address] = nil
                    state.servers[address]?.healthy = true
                }
                if let passive = config.passive {
                    let current = state.passive[address]
                    if current == nil || current?.failures != passive.failures || current?.window != TimeAmount(passive.window)
                        || current?.eject != TimeAmount(passive.eject)
                    {
                        state.passive[address] = PassiveHealth(
                            failures: passive.failures, window: TimeAmount(passive.window), eject: TimeAmount(passive.eject)
                        )
                    }
                } else {
                    state.passive[address] = nil
                    state.servers[address]?.ejectedUntil = nil
                }
            }
            // Listed servers first, in configuration order; leaving ones stay until they hold no connection.
            state.order = servers.map(\.0) + state.order.filter { !wanted.contains($0) && (state.servers[$0]?.live ?? 0) > 0 }
            for address in Array(state.servers.keys) where !state.order.contains(address) {
                state.servers[address] = nil
                state.health[address] = nil
                state.passive[address] = nil
            }
            return leaving
        }
    }

    /// Every server, in order.
    var servers: [Server] {
        self.state.withLock { state in state.order.compactMap { state.servers[$0] } }
    }

    /// One server.
    func server(_ address: BindAddress) -> Server? {
        self.state.withLock { $0.servers[address] }
    }

    // MARK: Connections

    /// A handshake chose `address` first.
    func handshakeStarted(_ address: BindAddress) {
        self.state.withLock { state in state.servers[address]?.pending += 1 }
    }

    /// That handshake ended, whatever its outcome.
    func handshakeEnded(_ address: BindAddress) {
        self.state.withLock { state in
            if let pending = state.servers[address]?.pending { state.servers[address]?.pending = max(0, pending - 1) }
        }
    }

    /// A relayed connection to `address` started.
    func connectionOpened(_ address: BindAddress) {
        self.state.withLock { state in state.servers[address]?.live += 1 }
    }

    /// A relayed connection to `address` ended; a server that left goes once its last connection ends.
    func connectionClosed(_ address: BindAddress) {
        self.state.withLock { state in
            guard var server = state.servers[address] else { return }
            server.live = max(0, server.live - 1)
            state.servers[address] = server
            if server.live == 0, server.pending == 0, server.drainReason == "removed" {
                state.servers[address] = nil
                state.order.removeAll { $0 == address }
                state.health[address] = nil
                state.passive[address] = nil
            }
        }
    }

    // MARK: Health

    /// A real attempt failed (connect failure, malformed or 5xx upgrade answer); true when it ejects the server.
    @discardableResult
    func attemptFailed(_ address: BindAddress, now: NIODeadline = .now()) -> Bool {
        self.state.withLock { state in
            guard var passive = state.passive[address] else { return false }
            let ejected = passive.failed(at: now)
            state.passive[address] = passive
            if ejected { state.servers[address]?.ejectedUntil = passive.ejectedUntil }
            return ejected
        }
    }

    /// A real attempt succeeded.
    func attemptSucceeded(_ address: BindAddress) {
        self.state.withLock { state in state.passive[address]?.succeeded() }
    }

    /// One active check's result; returns the new health when it changed.
    @discardableResult
    func checked(_ address: BindAddress, passed: Bool, now: NIODeadline = .now()) -> Bool? {
        self.state.withLock { state in
            guard var counter = state.health[address] else { return nil }
            let change = counter.record(passed: passed)
            state.health[address] = counter
            if let change {
                state.servers[address]?.healthy = change
                if change { state.servers[address]?.eligibleSince = now }
            }
            return change
        }
    }

    // MARK: Names

    /// What `entry` (a server given by name) resolved to last; nil before its first resolution.
    func resolved(_ entry: BindAddress) -> [BindAddress]? {
        self.state.withLock { $0.resolved[entry] }
    }

    /// Records what `entry` resolves to; returns whether that changed.
    func setResolved(_ entry: BindAddress, _ addresses: [BindAddress]) -> Bool {
        self.state.withLock { state in
            guard state.resolved[entry] != addresses else { return false }
            state.resolved[entry] = addresses
            return true
        }
    }

    /// Forgets names no longer configured.
    func keepResolved(_ entries: Set<BindAddress>) {
        self.state.withLock { state in state.resolved = state.resolved.filter { entries.contains($0.key) } }
    }

    // MARK: Operator

    /// Drains (or undrains) a server; false when the backend has no such server.
    func setDrained(_ address: BindAddress, _ drained: Bool, now: NIODeadline = .now()) -> Bool {
        self.state.withLock { state in
            guard var server = state.servers[address], server.drainReason != "removed" else { return false }
            if server.drained != drained {
                server.drained = drained
                server.drainReason = drained ? "operator" : nil
                if !drained { server.eligibleSince = now }
            }
            state.servers[address] = server
            return true
        }
    }
}
