import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A running proxy: listeners, the in-process echo backend, per-loop state and live connections.
public final class GatehouseServer: Sendable {
    /// The event loops serving connections.
    public let group: EventLoopGroup
    let engine: ProxyEngine
    let logger: Logger
    private let ownsGroup: Bool
    private let core: Mutex<Core>

    struct Core {
        var config: ProxyConfig
        var generation: Int
        var listeners: [String: RunningListener]
        var echo: EchoServer?
        var selfSigned: [String: SelfSignedCertificate]
        var counters: [String: RouteCounters]
    }

    private init(group: EventLoopGroup, ownsGroup: Bool, engine: ProxyEngine, logger: Logger, core: Core) {
        self.group = group
        self.ownsGroup = ownsGroup
        self.engine = engine
        self.logger = logger
        self.core = Mutex(core)
    }

    /// Starts the proxy on `config`: builds TLS contexts and pools, starts the echo backend if one is configured,
    /// binds every listener. `group` defaults to one event loop per configured thread (per core by default).
    public static func start(config: ProxyConfig, logger: Logger, group: EventLoopGroup? = nil) async throws -> GatehouseServer {
        let ownsGroup = group == nil
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: config.threads ?? System.coreCount)
        do {
            var echo: EchoServer?
            var echoAddress: BindAddress?
            if config.backends.contains(where: { $0.kind == .builtinEcho }) {
                let server = try await EchoServer.start(host: "127.0.0.1", port: 0, group: group)
                echo = server
                echoAddress = BindAddress(host: "127.0.0.1", port: server.localAddress?.port ?? 0)
                logger.info("builtin echo backend started", metadata: ["address": "\(echoAddress!)"])
            }
            var selfSigned: [String: SelfSignedCertificate] = [:]
            for listener in config.listeners where listener.tls?.selfSigned == true {
                let certificate = try SelfSignedCertificate.generate()
                selfSigned[listener.name] = certificate
                logger.notice(
                    "generated a self-signed development certificate",
                    metadata: ["listener": "\(listener.name)", "sha256": "\(certificate.fingerprint)"]
                )
            }
            let state = try await ProxyStateBuilder(
                echoAddress: echoAddress, selfSigned: selfSigned, counters: [:], environment: ProcessInfo.processInfo.environment
            ).build(config, generation: 1)
            var loops: [LoopContext] = []
            for loop in group.makeIterator() {
                loops.append(LoopContext(eventLoop: loop, state: state))
            }
            var accessLogger = logger
            accessLogger[metadataKey: "log"] = "access"
            let engine = ProxyEngine(loops: loops, logger: logger, accessLog: AccessLog(logger: accessLogger, enabled: config.log.accessLog))
            var listeners: [String: RunningListener] = [:]
            for listener in config.listeners {
                listeners[listener.name] = try await RunningListener.bind(listener, engine: engine, group: group)
                logger.info(
                    "listening",
                    metadata: [
                        "listener": "\(listener.name)",
                        "address": "\(listeners[listener.name]?.channel.localAddress.map(ConnectionRecord.describe) ?? "?")",
                        "tls": "\(listener.tls != nil)",
                    ]
                )
            }
            let counters = Dictionary(uniqueKeysWithValues: state.routes.all.map { ($0.name, $0.counters) })
            return GatehouseServer(
                group: group, ownsGroup: ownsGroup, engine: engine, logger: logger,
                core: Core(
                    config: config, generation: 1, listeners: listeners, echo: echo, selfSigned: selfSigned,
                    counters: counters
                )
            )
        } catch {
            if ownsGroup { try? await group.shutdownGracefully() }
            throw error
        }
    }

    /// The bound address of a listener (useful with port 0).
    public func localAddress(ofListener name: String) -> SocketAddress? {
        self.core.withLock { $0.listeners[name]?.channel.localAddress }
    }

    /// The configuration currently served.
    public var config: ProxyConfig {
        self.core.withLock { $0.config }
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

    /// Closes listeners and every connection at once, and stops the event loops if the server made them.
    public func stop() async {
        await self.closeListeners()
        let echo = self.core.withLock { core in
            let echo = core.echo
            core.echo = nil
            return echo
        }
        await echo?.stop()
        for loop in self.engine.allLoops {
            try? await loop.eventLoop.submit {
                for session in loop.sessions.values { session.abort() }
            }.get()
        }
        if self.ownsGroup { try? await self.group.shutdownGracefully() }
    }
}
