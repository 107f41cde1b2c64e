import ArgumentParser
import Foundation
import Gatehouse
import Logging
import ServiceLifecycle

@main
struct GatehouseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "A TLS-terminating reverse proxy for WebSocket traffic.",
        version: GatehouseVersion.string,
        subcommands: [Run.self, Check.self, Reload.self, Revoke.self, Echo.self, Version.self],
        defaultSubcommand: Run.self
    )
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy (the default command).")

    @Option(name: .shortAndLong, help: "Configuration file.")
    var config: String = "proxy.yaml"

    func run() async throws {
        let proxyConfig = try loadOrExit(self.config)
        LogControl.shared.apply(proxyConfig.log)
        LoggingSystem.bootstrap { label in GatehouseLogHandler(label: label) }
        let logger = Logger(label: "gatehouse")
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        do {
            // Before the proxy: the group stops services in reverse order, so spans are flushed after the drain.
            if let exporter = try GatehouseTracing.bootstrap(tracing: proxyConfig.tracing) { services.append(.init(service: exporter)) }
        } catch {
            logger.critical("tracing: \(error)")
            LogWriter.standardError.flush()
            throw ExitCode(1)
        }
        services.append(.init(service: GatehouseService(config: proxyConfig, logger: logger, logControl: .shared)))
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                cancellationSignals: [],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            logger.critical("stopped", metadata: ["error": "\(error)"])
            LogWriter.standardError.flush()
            throw ExitCode(1)
        }
        LogWriter.standardError.flush()
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a configuration file; exit 0 if valid, 1 if not.")

    @Argument(help: "Configuration file.")
    var path: String = "proxy.yaml"

    @Flag(help: "Also connect to the cluster's database (cluster mode only).")
    var connect = false

    @Flag(help: "Print the effective configuration as YAML, every default filled in (no secret values).")
    var explain = false

    func run() async throws {
        do {
            let config = try ConfigLoader.load(path: self.path)
            try await ConfigCheck.verifyFiles(config)
            let cluster = try await ClusterCheck.verify(config, connect: self.connect, environment: ProcessInfo.processInfo.environment)
            if self.explain {
                // Only YAML on standard output, so it can be piped into a file and read back.
                print(ConfigExplainer.yaml(for: config), terminator: "")
                if let cluster { FileHandle.standardError.write(Data("\(cluster)\n".utf8)) }
                return
            }
            print("\(self.path): OK (\(config.listeners.count) listeners, \(config.backends.count) backends, \(config.routes.count) routes)")
            if let cluster { print(cluster) }
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the WebSocket echo server (a test backend).")

    @Option(help: "HOST:PORT to listen on.")
    var bind: String = "127.0.0.1:9001"

    @Option(help: "Event-loop threads (default: one per core).")
    var threads: Int?

    @Option(help: "Largest frame echoed, e.g. 65536, 64KiB, 1MiB (1KiB to 1GiB); larger frames are closed with 1009.")
    var maxFrameBytes: String = "1MiB"

    func run() async throws {
        guard let address = BindAddress(parsing: self.bind) else {
            throw ValidationError("--bind must be HOST:PORT")
        }
        guard let maxFrameSize = ConfigValueParser.byteSize(self.maxFrameBytes), (1 << 10)...(1 << 30) ~= maxFrameSize else {
            throw ValidationError("--max-frame-bytes must be a size from 1KiB to 1GiB like 65536, 64KiB or 1MiB, found '\(self.maxFrameBytes)'")
        }
        try await EchoServer.serve(address: address, threads: self.threads, maxFrameSize: maxFrameSize) { bound in
            print("echo server listening on \(bound.map { "\($0)" } ?? self.bind)")
        }
    }
}

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a running proxy to reload its configuration (through the admin endpoint, else SIGHUP to the pid file)."
    )

    @Option(name: .shortAndLong, help: "The running proxy's configuration file.")
    var config: String = "proxy.yaml"

    func run() async throws {
        let proxyConfig = try loadOrExit(self.config)
        let outcome = await ReloadRequest.send(for: proxyConfig, environment: ProcessInfo.processInfo.environment)
        switch outcome {
        case .success(let message):
            print(message)
        case .failure(let message):
            FileHandle.standardError.write(Data("\(message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke tokens across a running proxy's cluster, list or delete revocations (through the admin endpoint).",
        discussion: """
            Times are RFC 3339 (2025-06-01T12:00:00Z); --expires also takes a duration (90m, 24h, 7d) from now.
            Without --expires the proxy keeps the revocation as long as the longest token lifetime it accepts.
            """
    )

    @Option(name: .shortAndLong, help: "The running proxy's configuration file.")
    var config: String = "proxy.yaml"

    @Option(help: "Revoke the tokens of this subject (sub).")
    var subject: String?

    @Option(help: "Revoke the token with this id (jti).")
    var jti: String?

    @Option(help: "Only tokens issued (iat) before this time, or 'now'; tokens without iat match.")
    var issuedBefore: String?

    @Option(help: "When the revocation may be forgotten: an RFC 3339 time or a duration like 24h.")
    var expires: String?

    @Flag(help: "List the revocations in force.")
    var list = false

    @Option(help: "Delete the revocation with this id.")
    var delete: String?

    func run() async throws {
        let action: RevokeRequest.Action
        do {
            action = try RevokeRequest.action(
                subject: self.subject, jti: self.jti, issuedBefore: self.issuedBefore, expires: self.expires, list: self.list,
                delete: self.delete
            )
        } catch {
            throw ValidationError(error.message)
        }
        let proxyConfig = try loadOrExit(self.config)
        switch await RevokeRequest.send(action, for: proxyConfig, environment: ProcessInfo.processInfo.environment) {
        case .success(let body):
            print(body)
        case .failure(let message):
            FileHandle.standardError.write(Data("\(message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")

    func run() {
        print("gatehouse \(GatehouseVersion.string)")
    }
}

/// Reads a configuration, or prints its error (`file:line:col: message`) and exits 1.
func loadOrExit(_ path: String) throws -> ProxyConfig {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        throw ExitCode(1)
    }
}
