import Logging
import NIOCore

extension GatehouseServer {
    /// Re-reads the configuration file (and the certificates, JWKS and token files it names). The new
    /// configuration is validated and built completely first; if anything is wrong the old one keeps serving and
    /// the error is returned. Otherwise it is swapped in atomically: new handshakes use it, live connections keep
    /// the policy they were admitted with, unchanged listeners keep their sockets.
    public func reload() async -> Result<Int, ConfigError> {
        let started = self.core.withLock { core -> Bool in
            if core.reloading { return false }
            core.reloading = true
            return true
        }
        guard started else {
            return .failure(ConfigError(file: self.config.file, line: 0, column: 0, message: "a reload is already running"))
        }
        defer { self.core.withLock { $0.reloading = false } }
        do {
            let generation = try await self.reloadOnce()
            self.engine.metrics.reloadsOK.increment()
            self.logger.notice("configuration reloaded", metadata: ["generation": "\(generation)"])
            return .success(generation)
        } catch {
            let configError = (error as? ConfigError) ?? ConfigError(file: self.config.file, line: 0, column: 0, message: "\(error)")
            self.engine.metrics.reloadsFailed.increment()
            self.logger.error("reload failed; the previous configuration keeps serving", metadata: ["error": "\(configError)"])
            return .failure(configError)
        }
    }

    /// Everything that can fail is acquired first (configuration, files, environment, TLS contexts, new listener
    /// sockets, a moved admin endpoint); only then is anything swapped, so a failure leaves the running
    /// configuration, its listeners and its admin endpoint exactly as they were.
    private func reloadOnce() async throws -> Int {
        let (current, echo, selfSigned, running) = self.core.withLock { core in
            (core.state, core.echo, core.selfSigned, core.listeners)
        }
        let config = try ConfigLoader.load(path: current.config.file)
        // The node's store connections, name and bus run for the process's life: changing them needs a restart.
        if !ClusterConfig.sameSettings(config.cluster, current.config.cluster) {
            let position = config.cluster?.position ?? ConfigPosition(file: config.file, line: 1, column: 1)
            throw position.error("the cluster section changed; restart the node to apply it (the running one keeps serving)")
        }
        let generation = current.generation + 1
        var builder = ServingStateBuilder(
            echoServer: echo, selfSigned: selfSigned,
            counters: Dictionary(uniqueKeysWithValues: current.routes.all.map { ($0.name, $0.counters) }),
            runtimes: current.backendRuntimes,
            metrics: self.engine.metrics, identity: self.identity, logger: self.logger
        )
        let startedEcho: EchoServer?
        let state: ServingState
        do {
            state = try await builder.build(config, generation: generation, echo: .start(on: self.group))
            startedEcho = builder.echoServer === echo ? nil : builder.echoServer
        } catch {
            if let started = builder.echoServer, started !== echo { await started.stop() }
            self.identity.discardPending()
            throw error
        }

        var opened: [String: RunningListener] = [:]
        let admin: AdminServer?
        do {
            for (key, listener) in state.listeners where running[key] == nil {
                do {
                    opened[key] = try await RunningListener.bind(key: key, address: listener.bind, engine: self.engine, group: self.group)
                } catch {
                    throw listener.position.error("listener '\(listener.name)' cannot bind \(listener.bind): \(error)")
                }
            }
            admin = try await self.bindAdmin(config.admin, file: config.file)
        } catch {
            for socket in opened.values { try? await socket.channel.close() }
            await startedEcho?.stop()
            self.identity.discardPending()
            throw error
        }

        // Nothing below can fail for a reason of the new configuration: swap.
        for loop in self.engine.allLoops {
            try await loop.eventLoop.submit { loop.state = state }.get()
        }
        let (removed, retiredAdmin) = self.core.withLock { core -> ([RunningListener], AdminServer?) in
            core.state = state
            core.echo = builder.echoServer
            core.selfSigned = builder.selfSigned
            core.listeners.merge(opened) { $1 }
            let gone = core.listeners.filter { state.listeners[$0.key] == nil }
            for key in gone.keys { core.listeners.removeValue(forKey: key) }
            // A new endpoint replaces the old one; none configured retires it; otherwise the old one stays.
            var retired: AdminServer?
            if admin != nil || config.admin.bind == nil {
                retired = core.admin
                core.admin = admin
            }
            return (Array(gone.values), retired)
        }
        // Servers a reload removed drain; the others keep their connections; operator drains end.
        self.applyBackendServers(clearDrains: true)
        self.healthChecker.update(state)
        builder.echoServer?.apply(config)
        // Key sets of unchanged providers carried over (keys, schedule, rate limits); removed ones stop, new ones start.
        await self.identity.commit()
        for socket in removed { try? await socket.channel.close() }
        await retiredAdmin?.stop()
        for (key, socket) in opened {
            self.logger.info("listening", metadata: ["listener": "\(state.listeners[key]?.name ?? key)", "address": "\(socket.address)"])
        }
        if let admin { self.logger.info("admin listening", metadata: ["address": "\(admin.address)"]) }
        self.logControl.apply(config.log)
        return generation
    }
}
