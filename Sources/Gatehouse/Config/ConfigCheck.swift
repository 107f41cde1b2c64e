import Logging

/// Checks of a configuration that need the files and variables it names (certificates, keys, CA files, JWKS,
/// token files, secrets), as `gatehouse check` does: the same ``ServingStateBuilder`` start-up uses, without
/// starting the echo server. Reads files: call it off the event loops.
public enum ConfigCheck {
    /// Builds everything the configuration names, failing on the first file, key or variable that does not load.
    public static func verifyFiles(_ config: ProxyConfig) async throws(ConfigError) {
        if case .unix(let path) = config.admin.bind {
            do {
                try AdminServer.checkSocketPath(path)
            } catch {
                throw (config.admin.bindPosition ?? ConfigPosition(file: config.file, line: 1, column: 1)).error("admin bind: \(error)")
            }
        }
        var builder = ServingStateBuilder(metrics: ProxyMetrics(), logger: Logger(label: "gatehouse.check") { _ in SwiftLogNoOpLogHandler() })
        _ = try await builder.build(config, generation: 0, echo: .placeholder)
    }
}
