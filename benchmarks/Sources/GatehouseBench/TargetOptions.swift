import ArgumentParser
import NIOSSL

/// Options every mode shares: where to connect, how, and what to report.
struct TargetOptions: ParsableArguments {
    @Option(help: "WebSocket URL on loopback, e.g. ws://127.0.0.1:18080/echo or wss://127.0.0.1:18443/echo.")
    var url: String

    @Option(name: .customLong("ca-file"), help: "PEM CA to verify the server certificate with (default: no verification).")
    var caFile: String?

    @Option(help: "Client event-loop threads.")
    var threads: Int = 1

    @Option(
        name: .customLong("watch-pid"),
        help: "A process of the server under test (repeatable); its descendants are included. CPU and RSS are sampled from /proc."
    )
    var watchPids: [Int32] = []

    @Flag(help: "Print one JSON object on stdout (the human-readable table goes to stderr).")
    var json = false

    func validate() throws {
        guard (1...64).contains(self.threads) else { throw ValidationError("--threads must be 1...64") }
    }

    /// The parsed target; a `ValidationError` explains a bad or non-loopback URL.
    func target() throws -> BenchTarget {
        do {
            return try BenchTarget(url: self.url)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// A client TLS context for `wss://` targets, nil for `ws://`.
    ///
    /// One context serves all connections; session resumption is not configured, so every connection pays a full
    /// handshake (which is what the handshake scenario measures).
    func tlsContext(for target: BenchTarget) throws -> NIOSSLContext? {
        guard target.tls else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile = self.caFile {
            configuration.trustRoots = .file(caFile)
            // The benchmark certificate names 127.0.0.1 and localhost, but the chain is what matters here.
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Samples the watched processes; nil when none were named.
    func sampler() -> ProcessSampler? {
        self.watchPids.isEmpty ? nil : ProcessSampler(rootPids: self.watchPids)
    }
}
