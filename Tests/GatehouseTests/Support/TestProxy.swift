import Foundation
import Logging
import NIOCore
@testable import Gatehouse

/// Log lines captured in memory, so tests can check what the proxy logs (and that no token is ever logged).
final class LogCapture: Sendable {
    private let lines = LineCollector()

    var all: [String] { self.lines.all }

    func append(_ line: String) {
        self.lines.append(line)
    }

    func contains(_ text: String) -> Bool {
        self.all.contains { $0.contains(text) }
    }

    /// Waits for a line, woken by the record itself: access records are written when the connection's last channel
    /// closes, just after the client sees the close.
    func waitForLine(containing text: String, timeout: Duration = .seconds(10)) async throws -> String {
        try await self.lines.waitForLine(containing: text, timeout: timeout, what: "a log line containing \(text)")
    }
}

struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = merged.keys.sorted().map { "\($0)=\(merged[$0]!)" }.joined(separator: " ")
        self.capture.append("\(event.level) \(event.message) \(fields)")
    }
}

/// A proxy started in-process for a test, on ephemeral ports.
struct TestProxy {
    let server: GatehouseServer
    let logs: LogCapture

    /// Starts a proxy from YAML text (use port 0 in binds). `file` anchors relative paths.
    static func start(_ yaml: String, file: String = "test.yaml") async throws -> TestProxy {
        let config = try ProxyConfig.parse(yaml: yaml, file: file)
        let capture = LogCapture()
        let logger = Logger(label: "gatehouse-test") { _ in CapturingLogHandler(capture: capture) }
        let server = try await GatehouseServer.start(config: config, logger: logger)
        return TestProxy(server: server, logs: capture)
    }

    func port(_ listener: String) throws -> Int {
        guard let port = self.server.localAddress(ofListener: listener)?.port else {
            throw TestError("listener \(listener) has no port")
        }
        return port
    }

    func stop() async {
        await self.server.stop()
    }

    /// Runs `body` with a started proxy and stops it afterwards, whatever happens.
    static func with<T>(_ yaml: String, file: String = "test.yaml", _ body: (TestProxy) async throws -> T) async throws -> T {
        let proxy = try await TestProxy.start(yaml, file: file)
        do {
            let result = try await body(proxy)
            await proxy.stop()
            return result
        } catch {
            await proxy.stop()
            throw error
        }
    }
}

/// A YAML configuration with one plain listener, the builtin echo backend and one route, to extend in tests.
enum TestConfig {
    static func echo(route: String = "", listener: String = "", extraTop: String = "") -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        \(listener)
        backends:
          - name: demo
            builtin: echo
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
        \(route)
        \(extraTop)
        """
    }
}
