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

    private func reloadOnce() async throws -> Int {
        let (path, generation, echo, selfSigned, running) = self.core.withLock { core in
            (core.config.file, core.generation + 1, core.echo, core.selfSigned, core.listeners)
        }
        let config = try ConfigLoader.load(path: path)
        var counters: [String: RouteCounters] = [:]
        if let loop = self.engine.allLoops.first {
            counters = try await loop.eventLoop.submit {
                Dictionary(uniqueKeysWithValues: loop.state.routes.all.map { ($0.name, $0.counters) })
            }.get()
        }
        var preparation = StatePreparation(echo: echo, selfSigned: selfSigned, counters: counters, metrics: self.engine.metrics, logger: self.logger)
        let state = try await preparation.prepare(config, generation: generation, group: self.group)

        // New sockets first: if one cannot be bound, nothing has changed yet.
        var opened: [String: RunningListener] = [:]
        for (key, listener) in state.listeners where running[key] == nil {
            do {
                opened[key] = try await RunningListener.bind(key: key, address: listener.bind, engine: self.engine, group: self.group)
            } catch {
                for socket in opened.values { try? await socket.channel.close() }
                throw listener.position.error("listener '\(listener.name)' cannot bind \(listener.bind): \(error)")
            }
        }
        for loop in self.engine.allLoops {
            try await loop.eventLoop.submit { loop.state = state }.get()
        }
        let removed = self.core.withLock { core -> [RunningListener] in
            core.config = config
            core.generation = generation
            core.echo = preparation.echo
            core.selfSigned = preparation.selfSigned
            core.listeners.merge(opened) { $1 }
            let gone = core.listeners.filter { state.listeners[$0.key] == nil }
            for key in gone.keys { core.listeners.removeValue(forKey: key) }
            return Array(gone.values)
        }
        for socket in removed { try? await socket.channel.close() }
        for (key, socket) in opened {
            self.logger.info("listening", metadata: ["listener": "\(state.listeners[key]?.name ?? key)", "address": "\(socket.address)"])
        }
        self.logControl.apply(config.log)
        try await self.startAdmin(config.admin, tokenDigest: state.adminTokenDigest)
        return generation
    }
}
