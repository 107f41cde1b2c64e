import Foundation
import Testing

@testable import Gatehouse

/// The `tracing:` section: parsed strictly, and its keys win over the `OTEL_*` variables.
@Suite("Tracing config")
struct TracingConfigTests {
    static func parse(_ tracing: String) throws -> ProxyConfig {
        try ProxyConfig.parse(yaml: TestConfig.echo() + "\n" + tracing + "\n", file: "/etc/gatehouse/proxy.yaml")
    }

    static func error(_ tracing: String) -> String {
        do {
            _ = try Self.parse(tracing)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func everyKeyIsRead() throws {
        let config = try Self.parse("""
            tracing:
              endpoint: "https://collector.example:4318"
              protocol: http/json
              service_name: gatehouse-eu
              sample_ratio: 0.25
            """)
        #expect(config.tracing == TracingConfig(
            endpoint: "https://collector.example:4318", exportProtocol: .httpJSON, serviceName: "gatehouse-eu", sampleRatio: 0.25))
        #expect(try Self.parse("tracing: {}").tracing == TracingConfig())
        #expect(try Self.parse("tracing: {sample_ratio: 1}").tracing?.sampleRatio == 1)
        #expect(try Self.parse("").tracing == nil)
    }

    @Test func badValuesAreErrorsWithTheirPosition() {
        #expect(Self.error("tracing: {protocol: grpc}").contains("protocol must be http/protobuf or http/json"))
        #expect(Self.error("tracing: {protocol: http}").contains("protocol must be"))
        #expect(Self.error("tracing: {endpoint: \"ftp://collector:21\"}").contains("endpoint must be an absolute http"))
        #expect(Self.error("tracing: {endpoint: collector:4318}").contains("endpoint must be"))
        #expect(Self.error("tracing: {endpoint: \"https://u:p@collector\"}").contains("credentials"))
        #expect(Self.error("tracing: {sample_ratio: 1.5}").contains("sample_ratio must be a number from 0 to 1"))
        #expect(Self.error("tracing: {sample_ratio: -0.1}").contains("sample_ratio must be"))
        #expect(Self.error("tracing: {sample_ratio: half}").contains("sample_ratio must be"))
        #expect(Self.error("tracing: {service_name: \"\"}").contains("service_name must not be empty"))
        #expect(Self.error("tracing: {sample_rate: 0.5}").contains("sample_rate"))
        #expect(Self.error("tracing: off").contains("tracing"))
        #expect(Self.error("tracing: {protocol: grpc}").contains("proxy.yaml:"))
    }

    @Test func keysReplaceTheirVariablesAndLeaveTheOthers() {
        let environment = [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://old:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://old:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            "OTEL_SERVICE_NAME": "old", "OTEL_TRACES_SAMPLER": "always_off", "OTEL_BSP_SCHEDULE_DELAY": "100",
        ]
        let all = TracingConfig(endpoint: "http://new:4318", exportProtocol: .httpProtobuf, serviceName: "new", sampleRatio: 0.5)
            .overriding(environment)
        #expect(all == [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://new:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "new", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        ])
        #expect(TracingConfig().overriding(environment) == environment)
    }

    @Test func aSectionTurnsTracingOn() {
        #expect(GatehouseTracing.requested([:], tracing: TracingConfig()))
        #expect(!GatehouseTracing.requested([:], tracing: nil))
        #expect(!GatehouseTracing.requested(["OTEL_SDK_DISABLED": "true"], tracing: TracingConfig()))
    }

    /// A real `gatehouse run`: the variables point at a closed port with gRPC (refused at start if it applied); only
    /// `tracing.endpoint` and `tracing.protocol` reach the receiver.
    @Test func theEndpointComesFromTheConfiguration() async throws {
        try await PythonPeerServer.with("otlp_receiver.py", []) { receiver, otlpPort in
            try await RecordingBackend.with { backend in
                let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-tracing-\(UUID().uuidString).yaml").path
                let yaml = TracingTests.config(backendPort: backend.port) + """

                    tracing:
                      endpoint: "http://127.0.0.1:\(otlpPort)"
                      protocol: http/json
                      service_name: gatehouse-from-yaml
                      sample_ratio: 1
                    """
                try yaml.write(toFile: path, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(atPath: path) }
                let process = try ChildProcess.start(
                    CLITests.binary, ["run", "--config", path],
                    environment: [
                        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces",
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                        "OTEL_SERVICE_NAME": "from-variable",
                        "OTEL_TRACES_SAMPLER": "always_off",
                        "OTEL_BSP_SCHEDULE_DELAY": "100",
                        // Would turn OTel logs and metrics back on (a fatal second LoggingSystem bootstrap) if passed on.
                        "OTEL_SDK_DISABLED": "false",
                    ]
                )
                defer { process.stop() }
                let line = try await process.waitForLine(containing: "listener=plain")
                let address = line.split(separator: " ").first { $0.hasPrefix("address=") }
                let port = try #require(address?.split(separator: ":").last.flatMap { Int($0) })
                try await TracingTests.relayOnce(port: port)

                let handshake = try await TracingTests.span("websocket.handshake", from: receiver)
                #expect(handshake["path"] as? String == "/v1/traces")
                #expect(handshake["trace"] as? String == TracingTests.traceID)
                #expect(handshake["service"] as? String == "gatehouse-from-yaml")
                process.signal(SIGTERM)
                #expect(try await process.waitForExit(seconds: 20) == 0)
            }
        }
    }
}
