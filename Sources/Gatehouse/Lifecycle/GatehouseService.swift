import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// The proxy as a swift-service-lifecycle service: starts on `run()`, reloads on SIGHUP, drains on graceful
/// shutdown (SIGTERM/SIGINT) and exits at once on a second SIGTERM or SIGINT.
public struct GatehouseService: Service {
    private let config: ProxyConfig
    private let logger: Logger
    private let logControl: LogControl

    /// A service that will serve `config`.
    public init(config: ProxyConfig, logger: Logger, logControl: LogControl) {
        self.config = config
        self.logger = logger
        self.logControl = logControl
    }

    public func run() async throws {
        // Installed before anything else: a SIGHUP that arrives during start-up must not kill the process.
        let reloads = await UnixSignalsSequence(trapping: .sighup)
        let stops = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let server = try await GatehouseServer.start(config: self.config, logger: self.logger, logControl: self.logControl)
        let logger = self.logger
        let systemd = SystemdNotifier()
        systemd.send(.ready(status: "serving, 0 connections"))
        let reloader = Task {
            for await _ in reloads {
                logger.notice("SIGHUP: reloading")
                systemd.send(.reloading(monotonicMicroseconds: SystemdNotifier.monotonicMicroseconds()))
                _ = await server.reload()
                systemd.send(.ready(status: "serving, \(await server.liveConnectionCount()) connections"))
            }
        }
        // The watchdog keep-alive at half the period systemd asks for, and a status line with the live connections.
        let heartbeat: Task<Void, Never>? = systemd.isActive ? Task {
            let interval = SystemdNotification.watchdogInterval(environment: ProcessInfo.processInfo.environment, pid: getpid())
            var statusDue = ContinuousClock.now
            while !Task.isCancelled {
                if interval != nil { systemd.send(.watchdog) }
                if ContinuousClock.now >= statusDue {
                    systemd.send(.status("serving, \(await server.liveConnectionCount()) connections"))
                    statusDue = ContinuousClock.now + .seconds(10)
                }
                try? await Task.sleep(for: min(interval ?? .seconds(10), .seconds(10)))
            }
        } : nil
        let escalation = Task {
            var seen = 0
            for await signal in stops {
                seen += 1
                if seen >= 2 {
                    logger.critical("second \(signal): exiting at once")
                    LogWriter.standardError.flush()
                    exit(1)
                }
            }
        }
        try? await gracefulShutdown()
        reloader.cancel()
        systemd.send(.stopping)
        let timeout = server.config.admin.drainTimeout
        self.logger.notice("draining", metadata: ["timeout": "\(timeout)"])
        await server.drain(timeout: timeout)
        heartbeat?.cancel()
        self.logger.notice("stopped")
        await server.stop()
        escalation.cancel()
    }
}
