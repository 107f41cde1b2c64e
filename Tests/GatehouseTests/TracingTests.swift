import Foundation
import Testing
@testable import Gatehouse

/// OpenTelemetry traces of a real `gatehouse run` process, exported over OTLP/HTTP+JSON to `Peers/otlp_receiver.py`.
@Suite("Tracing")
struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let clientParent = "00f067aa0ba902b7"
    static let traceparent = "00-\(traceID)-\(clientParent)-01"

    static func config(backendPort: Int) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:0"
        backends:
          - name: recorded
            servers: ["127.0.0.1:\(backendPort)"]
        routes:
          - name: traced
            path: "/ws"
            backend: recorded
            origins: ["*"]
        """
    }

    /// Starts `gatehouse run` with `environment` and waits for its listener's port.
    static func startProxy(backendPort: Int, environment: [String: String]) async throws -> (ChildProcess, Int) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-tracing-\(UUID().uuidString).yaml").path
        try Self.config(backendPort: backendPort).write(toFile: path, atomically: true, encoding: .utf8)
        let process = try ChildProcess.start(CLITests.binary, ["run", "--config", path], environment: environment)
        do {
            let line = try await process.waitForLine(containing: "listener=plain")
            let address = line.split(separator: " ").first { $0.hasPrefix("address=") }
            guard let port = address?.split(separator: ":").last.flatMap({ Int($0) }) else { throw TestError("no port in '\(line)'") }
            return (process, port)
        } catch {
            process.stop()
            throw error
        }
    }

    /// One upgrade carrying the client's `traceparent`, a message, and a client close with 1000.
    static func relayOnce(port: Int) async throws {
        let client = try await TestClient.connect(port: port)
        try await client.sendUpgrade(path: "/ws?token=secret-token", extra: [("traceparent", Self.traceparent), ("Authorization", "Bearer secret-token")])
        #expect(try await client.readHead().status == 101)
        try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
        #expect(try await client.readFrame().closeCode == 1000)
        _ = try await client.waitForClose()
        await client.close()
    }

    /// The JSON record of the first span named `name` the receiver printed.
    static func span(_ name: String, from receiver: PythonPeerServer) async throws -> [String: Any] {
        let line = try await receiver.waitForLine(containing: "SPAN \(name) ", timeout: .seconds(20))
        let json = line.dropFirst("SPAN \(name) ".count)
        guard let record = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw TestError("not a span record: \(line)")
        }
        return record
    }

    @Test func spansContinueTheClientTraceAndTheBackendGetsTheProxySpan() async throws {
        try await PythonPeerServer.with("otlp_receiver.py", []) { receiver, otlpPort in
            try await RecordingBackend.with { backend in
                let (process, port) = try await Self.startProxy(
                    backendPort: backend.port,
                    environment: [
                        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(otlpPort)",
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                        "OTEL_BSP_SCHEDULE_DELAY": "100",
                    ]
                )
                defer { process.stop() }
                try await Self.relayOnce(port: port)

                let handshake = try await Self.span("websocket.handshake", from: receiver)
                #expect(handshake["path"] as? String == "/v1/traces")
                #expect(handshake["trace"] as? String == Self.traceID)
                #expect(handshake["parent"] as? String == Self.clientParent)
                let attributes = handshake["attributes"] as? [String: Any] ?? [:]
                #expect(attributes["gatehouse.route"] as? String == "traced")
                #expect(attributes["gatehouse.listener"] as? String == "plain")
                #expect(attributes["gatehouse.transport"] as? String == "http/1.1")
                #expect(attributes["http.response.status_code"] as? Int == 101)
                #expect(attributes["gatehouse.backend.server"] as? String == "127.0.0.1:\(backend.port)")

                let connection = try await Self.span("websocket.connection", from: receiver)
                #expect(connection["trace"] as? String == Self.traceID)
                #expect(connection["parent"] as? String == handshake["span"] as? String)
                let closing = connection["attributes"] as? [String: Any] ?? [:]
                #expect(closing["websocket.close_code"] as? Int == 1000)
                #expect(closing["websocket.closed_by"] as? String == "client")
                #expect(closing["gatehouse.route"] as? String == "traced")

                // The backend continues the proxy's span, not the client's.
                let received = try #require(backend.received.first?.headers("traceparent"))
                #expect(received.count == 1)
                let parts = received.first?.split(separator: "-").map(String.init) ?? []
                #expect(parts.count == 4)
                #expect(parts.count == 4 && parts[1] == Self.traceID)
                #expect(parts.count == 4 && parts[2] != Self.clientParent)
                #expect(parts.count == 4 && parts[2] == handshake["span"] as? String)

                // No token reaches a span.
                let lines = try await receiver.waitForLine(containing: "SPAN websocket.connection ")
                #expect(!lines.contains("secret-token"))
                let handshakeLine = try await receiver.waitForLine(containing: "SPAN websocket.handshake ")
                #expect(!handshakeLine.contains("secret-token") && !handshakeLine.contains("token="))

                process.signal(SIGTERM)
                #expect(try await process.waitForExit(seconds: 20) == 0)
            }
        }
    }

    /// A connection still open at SIGTERM: its span ends with the drain and is flushed before the process exits
    /// (the batch delay is far longer than the test, so only the shutdown flush can deliver it).
    @Test func drainEndsTheConnectionSpanAndShutdownFlushesIt() async throws {
        try await PythonPeerServer.with("otlp_receiver.py", []) { receiver, otlpPort in
            try await RecordingBackend.with { backend in
                let (process, port) = try await Self.startProxy(
                    backendPort: backend.port,
                    environment: [
                        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(otlpPort)",
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                        "OTEL_BSP_SCHEDULE_DELAY": "600000",
                    ]
                )
                defer { process.stop() }
                let client = try await TestClient.connect(port: port)
                try await client.sendUpgrade(path: "/ws", extra: [("traceparent", Self.traceparent)])
                #expect(try await client.readHead().status == 101)
                process.signal(SIGTERM)
                #expect(try await client.readFrame(timeout: .seconds(10)).closeCode == 1001)
                try await client.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1001))
                #expect(try await process.waitForExit(seconds: 20) == 0)
                await client.close()
                let connection = try await Self.span("websocket.connection", from: receiver)
                #expect(connection["trace"] as? String == Self.traceID)
                let attributes = connection["attributes"] as? [String: Any] ?? [:]
                #expect(attributes["websocket.close_code"] as? Int == 1001)
                #expect(attributes["websocket.closed_by"] as? String == "proxy")
            }
        }
    }

    @Test func withoutOTelVariablesTheClientTraceparentPassesUnchanged() async throws {
        try await RecordingBackend.with { backend in
            // Clears any OTLP endpoint the test runner's environment may carry.
            let (process, port) = try await Self.startProxy(
                backendPort: backend.port,
                environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""]
            )
            defer { process.stop() }
            try await Self.relayOnce(port: port)
            #expect(backend.received.first?.headers("traceparent") == [Self.traceparent])
        }
    }

    @Test func grpcProtocolIsRefusedAtStart() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-tracing-\(UUID().uuidString).yaml").path
        try Self.config(backendPort: 9).write(toFile: path, atomically: true, encoding: .utf8)
        let process = try ChildProcess.start(
            CLITests.binary, ["run", "--config", path],
            environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"]
        )
        defer { process.stop() }
        #expect(try await process.waitForExit(seconds: 20) == 1)
        _ = try await process.waitForLine(containing: "grpc is not supported")
    }

    @Test func environmentDecidesWhetherTracingIsOn() {
        #expect(!GatehouseTracing.requested([:]))
        #expect(!GatehouseTracing.requested(["OTEL_EXPORTER_OTLP_ENDPOINT": ""]))
        #expect(GatehouseTracing.requested(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"]))
        #expect(GatehouseTracing.requested(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:4318/v1/traces"]))
        #expect(!GatehouseTracing.requested(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318", "OTEL_SDK_DISABLED": "true"]))
    }
}
