import Foundation
import Logging
import NIOHTTP1
import OTel
import ServiceLifecycle
import Tracing

/// OpenTelemetry tracing: off unless an OTLP endpoint is configured through the standard variables.
///
/// The relay checks ``enabled`` before creating anything, so with tracing off no span, context or header is made.
public enum GatehouseTracing {
    /// Set once by ``bootstrap(environment:tracing:)`` before any listener is bound, read afterwards only: a plain
    /// flag keeps the check free on the relay path.
    nonisolated(unsafe) static var enabled = false

    /// Why tracing could not be set up from the environment.
    public struct ConfigurationError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Whether traces are asked for: by a `tracing:` section or an OTLP endpoint variable, the SDK not disabled.
    static func requested(_ environment: [String: String], tracing: TracingConfig? = nil) -> Bool {
        if environment["OTEL_SDK_DISABLED"]?.lowercased() == "true" { return false }
        if tracing != nil { return true }
        let endpoint = [environment["OTEL_EXPORTER_OTLP_ENDPOINT"], environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]]
        return endpoint.contains { !($0 ?? "").isEmpty }
    }

    /// Installs the OTLP/HTTP tracer when the environment asks for it and returns the exporter's service (to run
    /// in the service group before the proxy, so shutdown flushes spans after the drain); nil leaves tracing off.
    /// Once per process: `InstrumentationSystem` is process-global.
    /// `tracing` (the configuration's `tracing:` section) overrides the variables it has keys for.
    public static func bootstrap(
        environment: [String: String] = ProcessInfo.processInfo.environment, tracing: TracingConfig? = nil
    ) throws -> (any Service)? {
        guard Self.requested(environment, tracing: tracing) else { return nil }
        // swift-otel applies the environment over configuration made in code, so the section's keys are made
        // into the variables it reads, and that environment is the one handed to it.
        var environment = tracing?.overriding(environment) ?? environment
        // Decided above; left in, OTEL_SDK_DISABLED=false would re-enable OTel logs and metrics over the code's
        // settings below, and their second LoggingSystem/MetricsSystem bootstrap is fatal.
        environment["OTEL_SDK_DISABLED"] = nil
        // Only the OTLPHTTP trait is built: swift-otel would crash on gRPC, so it is refused here.
        for name in ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] {
            if let value = environment[name], value.lowercased() == "grpc" {
                throw ConfigurationError(description: "\(name)=grpc is not supported: use http/protobuf or http/json")
            }
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = "gatehouse"
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        // Traces only (logs and metrics are disabled above): this bootstraps `InstrumentationSystem` alone.
        let service = try OTel.bootstrap(configuration: configuration, environment: environment)
        Self.enabled = true
        return service
    }

    /// The context of a client's request: the W3C `traceparent`/`tracestate` it carries, if any.
    static func clientContext(_ headers: HTTPHeaders) -> ServiceContext {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: HTTPHeadersExtractor())
        return context
    }

    /// Replaces the client's trace headers in a backend request with the proxy's span.
    static func inject(_ context: ServiceContext, into headers: inout HTTPHeaders) {
        headers.remove(name: "traceparent")
        headers.remove(name: "tracestate")
        InstrumentationSystem.instrument.inject(context, into: &headers, using: HTTPHeadersInjector())
    }
}

struct HTTPHeadersExtractor: Extractor {
    func extract(key: String, from carrier: HTTPHeaders) -> String? {
        let values = carrier[key]
        return values.isEmpty ? nil : values.joined(separator: ",")
    }
}

struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}
