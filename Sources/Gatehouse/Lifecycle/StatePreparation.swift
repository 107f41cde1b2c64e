import Crypto
import Foundation
import Logging
import NIOCore

/// Everything start-up and reload do before a configuration can serve: the echo backend, self-signed
/// certificates, TLS contexts, pools, token providers, the admin token. Reads files and the environment, so it
/// runs off the event loops; nothing live changes until it has succeeded.
struct StatePreparation {
    var echo: EchoServer?
    var selfSigned: [String: SelfSignedCertificate]
    var counters: [String: RouteCounters]
    let metrics: ProxyMetrics
    let logger: Logger

    mutating func prepare(_ config: ProxyConfig, generation: Int, group: EventLoopGroup) async throws -> ProxyState {
        if config.backends.contains(where: { $0.kind == .builtinEcho }), self.echo == nil {
            let server = try await EchoServer.start(host: "127.0.0.1", port: 0, group: group, maxFrameSize: EchoServer.maxFrameSize(for: config))
            self.echo = server
            self.logger.info("builtin echo backend started", metadata: ["address": "\(server.localAddress.map(ConnectionRecord.describe) ?? "?")"])
        }
        for listener in config.listeners where listener.tls?.selfSigned == true && self.selfSigned[listener.name] == nil {
            let certificate = try SelfSignedCertificate.generate()
            self.selfSigned[listener.name] = certificate
            self.logger.notice(
                "generated a self-signed development certificate",
                metadata: ["listener": "\(listener.name)", "sha256": "\(certificate.fingerprint)"]
            )
        }
        let environment = ProcessInfo.processInfo.environment
        var adminTokenDigest: [UInt8]?
        if let variable = config.admin.tokenEnv {
            guard let token = environment[variable], !token.isEmpty else {
                throw (config.admin.bindPosition ?? ConfigPosition(file: config.file, line: 1, column: 1))
                    .error("environment variable \(variable) (admin token_env) is not set")
            }
            adminTokenDigest = Array(SHA256.hash(data: Array(token.utf8)))
        }
        let echoAddress = self.echo?.localAddress.flatMap { $0.port }.map { BindAddress(host: "127.0.0.1", port: $0) }
        return try await ProxyStateBuilder(
            echoAddress: echoAddress, selfSigned: self.selfSigned, counters: self.counters, environment: environment,
            metrics: self.metrics, adminTokenDigest: adminTokenDigest
        ).build(config, generation: generation)
    }
}

/// Identifies a listener socket across reloads: its address, or for an ephemeral port also its name.
enum ListenerKey {
    static func of(_ listener: ListenerConfig) -> String {
        listener.bind.port == 0 ? "\(listener.name)@\(listener.bind)" : listener.bind.description
    }
}

/// The pid file `gatehouse reload` signals.
enum PidFile {
    static func write(_ path: String?, logger: Logger) {
        guard let path else { return }
        do {
            try "\(getpid())\n".write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            logger.error("cannot write the pid file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    static func remove(_ path: String?) {
        guard let path else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
