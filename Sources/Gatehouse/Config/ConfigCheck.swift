import Foundation

/// Checks of a configuration that need the files and variables it names (certificates, keys, CA files, JWKS,
/// token files, secrets), as `gatehouse check`
/// and start-up do. Reads files: call it off the event loops.
public enum ConfigCheck {
    /// Loads every certificate, key and CA the configuration names, failing on the first that does not load.
    public static func verifyFiles(_ config: ProxyConfig) async throws(ConfigError) {
        var selfSigned: [String: SelfSignedCertificate] = [:]
        for listener in config.listeners where listener.tls?.selfSigned == true {
            do {
                selfSigned[listener.name] = try SelfSignedCertificate.generate()
            } catch {
                throw listener.position.error("cannot generate a self-signed certificate: \(error)")
            }
        }
        if let variable = config.admin.tokenEnv, ProcessInfo.processInfo.environment[variable]?.isEmpty ?? true {
            throw (config.admin.bindPosition ?? ConfigPosition(file: config.file, line: 1, column: 1))
                .error("environment variable \(variable) (admin token_env) is not set")
        }
        if case .unix(let path) = config.admin.bind {
            do {
                try AdminServer.checkSocketPath(path)
            } catch {
                throw (config.admin.bindPosition ?? ConfigPosition(file: config.file, line: 1, column: 1)).error("admin bind: \(error)")
            }
        }
        _ = try await ProxyStateBuilder(
            echoAddress: BindAddress(host: "127.0.0.1", port: 1), selfSigned: selfSigned, counters: [:],
            environment: ProcessInfo.processInfo.environment, metrics: ProxyMetrics()
        ).build(config, generation: 0)
    }
}
