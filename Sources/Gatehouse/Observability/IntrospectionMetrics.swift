import Metrics
import Prometheus

/// An introspection provider's metrics: requests to the endpoint by result, and answers served from the cache.
/// The `provider` label is a configured name; `result` comes from a fixed set. A provider rebuilt by a reload gets
/// the same series back from the registry.
final class IntrospectionMetrics: Sendable {
    let active: Metrics.Counter
    let inactive: Metrics.Counter
    /// No usable answer: timeout, connection failure, error status, oversized or malformed body, queue full.
    let error: Metrics.Counter
    let cacheHits: Metrics.Counter

    init(provider: String, factory: PrometheusMetricsFactory) {
        let requests = "gatehouse_auth_introspection_requests_total"
        self.active = Metrics.Counter(label: requests, dimensions: [("provider", provider), ("result", "active")], factory: factory)
        self.inactive = Metrics.Counter(label: requests, dimensions: [("provider", provider), ("result", "inactive")], factory: factory)
        self.error = Metrics.Counter(label: requests, dimensions: [("provider", provider), ("result", "error")], factory: factory)
        self.cacheHits = Metrics.Counter(
            label: "gatehouse_auth_introspection_cache_hits_total", dimensions: [("provider", provider)], factory: factory
        )
    }
}
