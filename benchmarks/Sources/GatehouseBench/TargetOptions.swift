import ArgumentParser
import Foundation
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

    @Option(
        name: .customLong("tls-groups"),
        help: """
            Key-exchange groups the TLS client offers, comma-separated: x25519, secp256r1, secp384r1, x25519mlkem768 \
            (default: NIOSSL's own list, which puts the post-quantum hybrid X25519MLKEM768 first).
            """
    )
    var tlsGroups: String?

    @Flag(help: "Print one JSON object on stdout (the human-readable table goes to stderr).")
    var json = false

    static let groupNames: [String: NIOTLSCurve] = [
        "x25519": .x25519, "secp256r1": .secp256r1, "secp384r1": .secp384r1, "x25519mlkem768": .x25519_MLKEM768,
    ]

    func validate() throws {
        guard (1...64).contains(self.threads) else { throw ValidationError("--threads must be 1...64") }
        _ = try self.groups()
    }

    /// The groups named by `--tls-groups`, nil for NIOSSL's default list.
    func groups() throws -> [NIOTLSCurve]? {
        guard let list = self.tlsGroups else { return nil }
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        let groups = try names.map { name in
            guard let group = Self.groupNames[name] else {
                throw ValidationError("--tls-groups: unknown group '\(name)' (known: \(Self.groupNames.keys.sorted().joined(separator: ", ")))")
            }
            return group
        }
        guard !groups.isEmpty else { throw ValidationError("--tls-groups needs at least one group") }
        return groups
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
    /// handshake (which is what the handshake scenario measures). `alpn` is what the client offers: nothing for the
    /// HTTP/1.1 modes (a server that offers h2 then falls back to HTTP/1.1), `["h2"]` for `h2echo`.
    func tlsContext(for target: BenchTarget, alpn: [String] = []) throws -> NIOSSLContext? {
        guard target.tls else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = alpn
        configuration.curves = try self.groups()
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
