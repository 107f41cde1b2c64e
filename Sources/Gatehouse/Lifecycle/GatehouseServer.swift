import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A running proxy: listeners, the in-process echo backend, the admin endpoint, the state it serves and, through
/// ``ProxyEngine``, each loop's runtime and live connections.
public final class GatehouseServer: Sendable {
    /// The event loops serving connections.
    public let group: EventLoopGroup
    let engine: ProxyEngine
    /// This process as a member of the fleet, with `cluster:`.
    let clusterNode: ClusterNode?
    /// Active WebSocket health checks of the backends that ask for them.
    let healthChecker: HealthChecker
    /// The HTTP client and remote key sets of identity providers, kept across reloads.
    let identity: IdentityRuntime
    let logger: Logger
    let logControl: LogControl
    private let ownsGroup: Bool
    let core: Mutex<Core>

    struct Core {
        /// What is served: the snapshot every loop's runtime holds too (a reload swaps them all, then this one).
        var state: ServingState
        /// Bound listener sockets by ``ListenerKey``.
        var listeners: [String: RunningListener]
        var echo: EchoServer?
        /// Self-signed certificates by listener name, kept across reloads.
        var selfSigned: [String: SelfSignedCertificate]
        var admin: AdminServer?
        var reloading = false
        /// Per-loop tasks publishing traffic to the metrics.
        var publishers: [RepeatedTask] = []
        /// The cluster node's heartbeat, registry and bus tasks.
        var clusterTask: Task<Void, Never>?
        /// Resolves backend server names again every `resolve_interval`.
        var resolveTask: Task<Void, Never>?
    }

    private init(
        group: EventLoopGroup, ownsGroup: Bool, engine: ProxyEngine, clusterNode: ClusterNode?, identity: IdentityRuntime,
        healthChecker: HealthChecker, logger: Logger, logControl: LogControl, core: Core
    ) {
        self.healthChecker = healthChecker
        self.group = group
        self.clusterNode = clusterNode
        self.identity = identity
        self.ownsGroup = ownsGroup
        self.engine = engine
        self.logger = logger
        self.logControl = logControl
        self.core = Mutex(core)
    }

    /// Starts the proxy on `config`: builds TLS contexts and pools, starts the echo backend if one is configured,
    /// binds every listener and the admin endpoint. `group` defaults to one event loop per configured thread
    /// (per core by default).
    public static func start(
        config: ProxyConfig, logger: Logger, logControl: LogControl = LogControl(), group: EventLoopGroup? = nil
    ) async throws -> GatehouseServer {
        try await Self.start(config: config, logger: logger, logControl: logControl, group: group, resolver: SystemBackendResolver())
    }

    /// ``start(config:logger:logControl:group:)`` with the resolver of backend server names (tests pass their own).
    static func start(
        config: ProxyConfig, logger: Logger, logControl: LogControl = LogControl(), group: EventLoopGroup? = nil,
        resolver: any BackendResolver
    ) async throws -> GatehouseServer {
        logControl.apply(config.log)
        let ownsGroup = group == nil
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: config.threads ?? System.coreCount)
        var echo: EchoServer?
        var listeners: [String: RunningListener] = [:]
        var publishers: [RepeatedTask] = []
        let metrics = ProxyMetrics()
        // Always made (an idle client holds no connection): a reload may add a provider that fetches.
        let identity = IdentityRuntime(eventLoopGroup: group, metrics: metrics, logger: logger)
        do {
            let clusterNode = try config.cluster.map { cluster throws(ConfigError) in
                try ClusterNode.make(cluster, environment: ProcessInfo.processInfo.environment, logger: logger, metrics: metrics)
            }
            var builder = ServingStateBuilder(metrics: metrics, identity: identity, logger: logger)
            // An echo server the builder started is stopped below if anything fails, the build itself included.
            defer { echo = builder.echoServer }
            let state = try await builder.build(config, generation: 1, echo: .start(on: group))
            // Remote key sets start fetching now, in the background: the proxy serves while the IdP answers.
            await identity.commit()
            var loops: [LoopRuntime] = []
            for loop in group.makeIterator() {
                let runtime = LoopRuntime(eventLoop: loop, state: state)
                // Traffic reaches the metrics at least this often even when nobody scrapes them, which also
                // bounds the pending list.
                publishers.append(loop.scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in runtime.publishTraffic() })
                loops.append(runtime)
            }
            var accessLogger = logger
            accessLogger[metadataKey: "log"] = "access"
            let engine = ProxyEngine(
                loops: loops, logger: logger, accessLog: AccessLog(logger: accessLogger, control: logControl), metrics: metrics,
                cluster: clusterNode
            )
            for (key, listener) in state.listeners {
                listeners[key] = try await RunningListener.bind(key: key, address: listener.bind, engine: engine, group: group)
                logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(listeners[key]?.address ?? "?")", "tls": "\(listener.tls != nil)"])
            }
            let server = GatehouseServer(
                group: group, ownsGroup: ownsGroup, engine: engine, clusterNode: clusterNode, identity: identity,
                healthChecker: HealthChecker(group: group, metrics: BackendMetrics(factory: metrics.factory), logger: logger),
                logger: logger, logControl: logControl, core: Core(
                    state: state, listeners: listeners, echo: builder.echoServer, selfSigned: builder.selfSigned,
                    publishers: publishers
                )
            )
            server.applyBackendServers(clearDrains: false)
            // A server the checks eject leaves like a removed one: its connections are closed at drain_rate.
            server.healthChecker.onEjection { [weak server] backend, address in
                guard let server, let rate = server.core.withLock({ $0.state.pools[backend]?.drainRate }) else { return }
                Task { _ = await server.closeConnections(backend: backend, server: address, rate: rate) }
            }
            server.healthChecker.start(state)
            let resolveTask = Task { await server.resolveBackendNames(using: resolver) }
            server.core.withLock { $0.resolveTask = resolveTask }
            if let clusterNode {
                clusterNode.attach(server)
                let task = Task { await clusterNode.run() }
                server.core.withLock { $0.clusterTask = task }
                logger.info("cluster mode", metadata: ["node": "\(clusterNode.node)"])
            }
            // If the admin endpoint cannot bind, the cleanup below is complete (the cluster task is stopped there).
            let admin: AdminServer?
            do {
                admin = try await server.bindAdmin(config.admin, file: config.file)
            } catch {
                resolveTask.cancel()
                await server.healthChecker.stop()
                await server.stopCluster()
                throw error
            }
            server.core.withLock { $0.admin = admin }
            if let admin { logger.info("admin listening", metadata: ["address": "\(admin.address)"]) }
            PidFile.write(config.admin.pidFile, logger: logger)
            return server
        } catch {
            for publisher in publishers { publisher.cancel() }
            for listener in listeners.values { try? await listener.channel.close() }
            await echo?.stop()
            await identity.shutdown()
            if ownsGroup { try? await group.shutdownGracefully() }
            throw error
        }
    }

    /// The bound address of a listener (useful with port 0).
    public func localAddress(ofListener name: String) -> SocketAddress? {
        self.core.withLock { core in
            guard let listener = core.state.config.listeners.first(where: { $0.name == name }) else { return nil }
            return core.listeners[ListenerKey.of(listener)]?.channel.localAddress
        }
    }

    /// The bound address of the admin endpoint.
    public var adminAddress: SocketAddress? {
        self.core.withLock { $0.admin?.channel.localAddress }
    }

    /// SHA-256 of the admin token currently required, if any.
    var adminTokenDigest: [UInt8]? {
        self.core.withLock { $0.state.adminTokenDigest }
    }

    /// The configuration currently served.
    public var config: ProxyConfig {
        self.core.withLock { $0.state.config }
    }

    /// Whether every configured listener is bound.
    var listenersOpen: Bool {
        self.core.withLock { core in core.state.config.listeners.allSatisfy { core.listeners[ListenerKey.of($0)] != nil } }
    }

    /// Closes every listener socket (accepted connections are not touched).
    func closeListeners() async {
        let listeners = self.core.withLock { core in
            let result = Array(core.listeners.values)
            core.listeners = [:]
            return result
        }
        for listener in listeners { try? await listener.channel.close() }
    }

    /// Closes listeners, the admin endpoint and every connection at once, and stops the event loops if the server
    /// made them.
    public func stop() async {
        await self.closeListeners()
        await self.healthChecker.stop()
        let (echo, admin, pidFile, publishers, resolveTask) = self.core.withLock { core in
            let result = (core.echo, core.admin, core.state.config.admin.pidFile, core.publishers, core.resolveTask)
            core.resolveTask = nil
            core.echo = nil
            core.admin = nil
            core.publishers = []
            return result
        }
        for publisher in publishers { publisher.cancel() }
        // Not awaited: a lookup in flight may take the system resolver's timeout, and it changes nothing once stopped.
        resolveTask?.cancel()
        await admin?.stop()
        await echo?.stop()
        for loop in self.engine.allLoops {
            try? await loop.eventLoop.submit {
                for connection in loop.connections.values { connection.abort() }
            }.get()
        }
        await self.stopCluster()
        await self.identity.shutdown()
        PidFile.remove(pidFile)
        if self.ownsGroup { try? await self.group.shutdownGracefully() }
    }

    /// Leaves the fleet (this node's registry rows and leases go at once) and stops the cluster tasks.
    func stopCluster() async {
        guard let clusterNode = self.clusterNode else { return }
        let task = self.core.withLock { core in
            defer { core.clusterTask = nil }
            return core.clusterTask
        }
        guard let task else { return }
        await clusterNode.leave()
        task.cancel()
        await task.value
    }
}
