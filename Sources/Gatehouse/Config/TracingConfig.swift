import Foundation

/// OpenTelemetry tracing settings (`tracing:`). Its presence turns tracing on; each key it sets overrides the
/// matching `OTEL_*` variable, and a key it leaves out leaves that variable (or swift-otel's default) in effect.
public struct TracingConfig: Sendable, Equatable {
    /// OTLP/HTTP transports swift-otel is built with here (gRPC is not).
    public enum ExportProtocol: String, Sendable, Equatable, CaseIterable {
        case httpProtobuf = "http/protobuf"
        case httpJSON = "http/json"
    }

    /// Base URL of the OTLP/HTTP receiver, as `OTEL_EXPORTER_OTLP_ENDPOINT` (spans go to `<endpoint>/v1/traces`).
    public var endpoint: String?
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    public var exportProtocol: ExportProtocol?
    /// `OTEL_SERVICE_NAME`.
    public var serviceName: String?
    /// Share of new traces sampled (0…1), parent-based: a client's sampled flag is followed.
    public var sampleRatio: Double?

    public init(endpoint: String? = nil, exportProtocol: ExportProtocol? = nil, serviceName: String? = nil, sampleRatio: Double? = nil) {
        self.endpoint = endpoint
        self.exportProtocol = exportProtocol
        self.serviceName = serviceName
        self.sampleRatio = sampleRatio
    }

    /// `environment` with the variables this section sets replaced, as swift-otel is to read it: it applies the
    /// environment over any configuration made in code, so the section's keys win only by being variables.
    public func overriding(_ environment: [String: String]) -> [String: String] {
        var result = environment
        if let endpoint = self.endpoint {
            result["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
            // The per-signal variable would win over the general one.
            result["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = nil
        }
        if let exportProtocol = self.exportProtocol {
            result["OTEL_EXPORTER_OTLP_PROTOCOL"] = exportProtocol.rawValue
            result["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = nil
        }
        if let serviceName = self.serviceName {
            result["OTEL_SERVICE_NAME"] = serviceName
        }
        if let sampleRatio = self.sampleRatio {
            result["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
            result["OTEL_TRACES_SAMPLER_ARG"] = String(sampleRatio)
        }
        return result
    }
}

extension TracingConfig {
    init(node: ConfigNode) throws(ConfigError) {
        self.init()
        let map = try node.mapping("tracing")
        if let endpointNode = map.optional("endpoint") {
            let endpoint = try endpointNode.string("endpoint")
            if let problem = Self.endpointProblem(endpoint) { throw endpointNode.error(problem) }
            self.endpoint = endpoint
        }
        if let protocolNode = map.optional("protocol") {
            let text = try protocolNode.string("protocol")
            guard let value = ExportProtocol(rawValue: text) else {
                throw protocolNode.error("protocol must be http/protobuf or http/json (gRPC is not built in), found '\(text)'")
            }
            self.exportProtocol = value
        }
        self.serviceName = try map.optional("service_name")?.string("service_name")
        if let ratioNode = map.optional("sample_ratio") {
            let text = try ratioNode.string("sample_ratio")
            guard let ratio = Double(text), (0...1).contains(ratio) else {
                throw ratioNode.error("sample_ratio must be a number from 0 to 1, found '\(text)'")
            }
            self.sampleRatio = ratio
        }
        try map.finish()
    }

    /// Why `endpoint` cannot be exported to, or nil: an absolute http(s) URL without credentials (it is logged).
    static func endpointProblem(_ endpoint: String) -> String? {
        guard let components = URLComponents(string: endpoint), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            return "endpoint must be an absolute http:// or https:// URL such as http://collector:4318, found '\(endpoint)'"
        }
        if components.user != nil || components.password != nil {
            return "endpoint must not carry credentials (user:password@)"
        }
        return nil
    }
}
