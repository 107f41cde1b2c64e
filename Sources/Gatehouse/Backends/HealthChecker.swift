import Logging
import NIOCore
import Synchronization

/// Runs the active WebSocket health checks of every backend that has `health:` (none otherwise: no check traffic).
///
/// One task per checked backend. Each of its servers is checked every `interval`, the first check at a random
/// point of the first interval so that a backend's checks are spread out; at most one check per server is in
/// flight (a check is bounded by `timeout`, shorter than `interval`). Servers that appear (DNS, reload) are picked
/// up within an interval, servers that leave are no longer checked. Results go to the backend's
/// ``BackendRuntime`` (`fall` failures in a row eject, `rise` passes readmit) and to ``BackendMetrics``.
final class HealthChecker: Sendable {
    let metrics: BackendMetrics
    private let group: EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())
    /// Called when checks eject a server: the server's live connections are drained like a removed server's.
    private let ejectionHandler = Mutex<(@Sendable (String, BindAddress) -> Void)?>(nil)

    private struct State {
        var watches: [String: Watch] = [:]
        var stopped = false
    }

    /// One checked backend: its settings, its current pool (swapped in place at reload) and its task.
    private struct Watch {
        let health: HealthCheckConfig
        let pool: PoolBox
        let task: Task<Void, Never>
    }

    /// The pool of the current generation; the task reads it before each round.
    private final class PoolBox: Sendable {
        let pool: Mutex<BackendPool>

        init(_ pool: BackendPool) {
            self.pool = Mutex(pool)
        }

        var current: BackendPool { self.pool.withLock { $0 } }
    }

    init(group: EventLoopGroup, metrics: BackendMetrics, logger: Logger) {
        self.group = group
        self.metrics = metrics
        self.logger = logger
    }

    /// What to do when checks eject a server (set once, before ``start(_:)``).
    func onEjection(_ handler: @escaping @Sendable (String, BindAddress) -> Void) {
        self.ejectionHandler.withLock { $0 = handler }
    }

    /// Starts checking the backends of `state`.
    func start(_ state: ServingState) {
        self.update(state)
    }

    /// Follows a reload: new or changed `health` settings (re)start a backend's task, backends that left or lost
    /// `health` stop, unchanged ones keep their schedule and take the new pool.
    func update(_ state: ServingState) {
        var wanted: [String: (HealthCheckConfig, BackendPool)] = [:]
        for backend in state.config.backends {
            if let health = backend.health, let pool = state.pools[backend.name] { wanted[backend.name] = (health, pool) }
        }
        let stale = self.state.withLock { current -> [Task<Void, Never>] in
            guard !current.stopped else { return [] }
            var stale: [Task<Void, Never>] = []
            for (name, watch) in current.watches where wanted[name]?.0 != watch.health {
                stale.append(watch.task)
                current.watches[name] = nil
            }
            for (name, (health, pool)) in wanted {
                if let watch = current.watches[name] {
                    watch.pool.pool.withLock { $0 = pool }
                } else {
                    let box = PoolBox(pool)
                    let task = Task { [group = self.group, metrics = self.metrics, logger = self.logger] in
                        await Self.run(
                            backend: name, health: health, pool: box, group: group, metrics: metrics, logger: logger,
                            ejected: { backend, server in self.ejectionHandler.withLock { $0 }?(backend, server) }
                        )
                    }
                    current.watches[name] = Watch(health: health, pool: box, task: task)
                }
            }
            return stale
        }
        for task in stale { task.cancel() }
    }

    /// Stops every check (checks in flight are abandoned and their connections closed) and waits for the tasks.
    func stop() async {
        let tasks = self.state.withLock { current -> [Task<Void, Never>] in
            current.stopped = true
            defer { current.watches = [:] }
            return current.watches.values.map(\.task)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// What wakes a backend's task.
    private enum Event: Sendable {
        case tick
        case checked(BindAddress, WebSocketProbe.Outcome)
    }

    private static func run(
        backend: String, health: HealthCheckConfig, pool: PoolBox, group: EventLoopGroup, metrics: BackendMetrics, logger: Logger,
        ejected: @escaping @Sendable (String, BindAddress) -> Void
    ) async {
        let clock = ContinuousClock()
        let interval = health.interval
        let timeout = TimeAmount(health.timeout)
        var due: [BindAddress: ContinuousClock.Instant] = [:]
        var inFlight: Set<BindAddress> = []
        await withTaskGroup(of: Event.self) { tasks in
            var timerPending = false
            while !Task.isCancelled {
                let current = pool.current
                let servers = current.runtime.servers.filter { $0.drainReason != "removed" }.map(\.address)
                let now = clock.now
                let present = Set(servers)
                for address in Array(due.keys) where !present.contains(address) { due[address] = nil }
                for address in servers where due[address] == nil {
                    due[address] = now + interval * Double.random(in: 0..<1)
                }
                for address in servers where !inFlight.contains(address) {
                    guard let at = due[address], at <= now else { continue }
                    inFlight.insert(address)
                    due[address] = max(at + interval, now + interval / 2)
                    let eventLoop = group.next()
                    tasks.addTask {
                        .checked(address, await WebSocketProbe.check(server: address, pool: current, path: health.path, timeout: timeout, on: eventLoop))
                    }
                }
                if !timerPending {
                    // Never sooner than 10 ms: a server whose check is still running is due again only after it.
                    let wake = max(min(due.values.min() ?? now + interval, now + interval), now + .milliseconds(10))
                    timerPending = true
                    tasks.addTask {
                        try? await Task.sleep(until: wake, clock: clock)
                        return .tick
                    }
                }
                guard let event = await tasks.next() else { break }
                switch event {
                case .tick:
                    timerPending = false
                case .checked(let address, let outcome):
                    inFlight.remove(address)
                    guard due[address] != nil else { continue }  // the server left meanwhile
                    if Self.record(outcome, backend: backend, server: address, runtime: pool.current.runtime, metrics: metrics, logger: logger) {
                        ejected(backend, address)
                    }
                }
            }
            tasks.cancelAll()
        }
    }

    /// Records one check; true when it ejected the server.
    private static func record(
        _ outcome: WebSocketProbe.Outcome, backend: String, server: BindAddress, runtime: BackendRuntime, metrics: BackendMetrics, logger: Logger
    ) -> Bool {
        let passed = outcome == .passed
        metrics.checked(backend: backend, server: server, passed: passed)
        if case .failed(let why) = outcome {
            logger.debug("health check failed", metadata: ["backend": "\(backend)", "server": "\(server)", "error": "\(why)"])
        }
        switch runtime.checked(server, passed: passed) {
        case false?:
            metrics.ejected(backend: backend, server: server, reason: .active)
            var metadata: Logger.Metadata = ["backend": "\(backend)", "server": "\(server)"]
            if case .failed(let why) = outcome { metadata["error"] = "\(why)" }
            logger.notice("backend server down: failed its health checks", metadata: metadata)
            return true
        case true?:
            logger.notice("backend server up: passed its health checks", metadata: ["backend": "\(backend)", "server": "\(server)"])
        case nil:
            break
        }
        return false
    }
}
