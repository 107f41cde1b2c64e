import Logging
import ServiceLifecycle

/// The proxy as a swift-service-lifecycle service: starts on `run()`, stops on graceful shutdown.
public struct GatehouseService: Service {
    private let config: ProxyConfig
    private let logger: Logger

    /// A service that will serve `config`.
    public init(config: ProxyConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public func run() async throws {
        let server = try await GatehouseServer.start(config: self.config, logger: self.logger)
        try? await gracefulShutdown()
        self.logger.notice("draining", metadata: ["timeout": "\(self.config.admin.drainTimeout)"])
        await server.drain(timeout: self.config.admin.drainTimeout)
        self.logger.notice("stopped")
        await server.stop()
    }
}
