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
        let reloader = Task {
            for await _ in reloads {
                logger.notice("SIGHUP: reloading")
                _ = await server.reload()
            }
        }
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
        let timeout = server.config.admin.drainTimeout
        self.logger.notice("draining", metadata: ["timeout": "\(timeout)"])
        await server.drain(timeout: timeout)
        self.logger.notice("stopped")
        await server.stop()
        escalation.cancel()
    }
}
