import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// The proxy's metrics, created through swift-metrics on a Prometheus registry owned by this server instance
/// (several servers in one process, as in tests, do not share counters).
///
/// Metrics touched per read are created once per route and cached, so the relay path only does atomic adds.
final class ProxyMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let reloadsOK: Metrics.Counter
    let reloadsFailed: Metrics.Counter
    private let closes = NIOLockedValueBox<[String: Metrics.Counter]>([:])
    private let connectFailures = NIOLockedValueBox<[String: Metrics.Counter]>([:])
    private let tlsFailures = NIOLockedValueBox<[String: Metrics.Counter]>([:])
    private let routes = NIOLockedValueBox<[String: RouteMetrics]>([:])
    private let unrouted: RouteMetrics

    init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.durationHistogramBuckets = [
            "gatehouse_handshake_duration_seconds": latencyBuckets,
            "gatehouse_connection_duration_seconds": [
                .seconds(1), .seconds(10), .seconds(60), .seconds(300), .seconds(1800), .seconds(3600), .seconds(14400),
                .seconds(86400),
            ],
        ]
        self.registry = registry
        self.factory = factory
        self.reloadsOK = Metrics.Counter(label: "gatehouse_config_reloads_total", dimensions: [("result", "ok")], factory: factory)
        self.reloadsFailed = Metrics.Counter(label: "gatehouse_config_reloads_total", dimensions: [("result", "failed")], factory: factory)
        Metrics.Gauge(label: "gatehouse_build_info", dimensions: [("version", GatehouseVersion.string)], factory: factory).record(1)
        self.unrouted = RouteMetrics(route: "-", factory: factory)
    }

    /// The metrics of a route (kept across reloads, by name).
    func route(_ name: String) -> RouteMetrics {
        self.routes.withLockedValue { routes in
            if let existing = routes[name] { return existing }
            let created = RouteMetrics(route: name, factory: self.factory)
            routes[name] = created
            return created
        }
    }

    /// Refusals that happen before a route is known.
    var noRoute: RouteMetrics { self.unrouted }

    func closed(code: UInt16?, by: String) {
        let key = "\(code.map(String.init) ?? "none")|\(by)"
        self.cached(self.closes, key) {
            Metrics.Counter(label: "gatehouse_closes_total", dimensions: [("code", code.map(String.init) ?? "none"), ("by", by)], factory: self.factory)
        }.increment()
    }

    func backendConnectFailed(backend: String, server: String) {
        self.cached(self.connectFailures, "\(backend)|\(server)") {
            Metrics.Counter(label: "gatehouse_backend_connect_failures_total", dimensions: [("backend", backend), ("server", server)], factory: self.factory)
        }.increment()
    }

    func tlsHandshakeFailed(listener: String) {
        self.cached(self.tlsFailures, listener) {
            Metrics.Counter(label: "gatehouse_tls_handshake_failures_total", dimensions: [("listener", listener)], factory: self.factory)
        }.increment()
    }

    /// The Prometheus text exposition.
    func exposition() -> [UInt8] {
        self.registry.emitToBuffer()
    }

    private func cached(_ box: NIOLockedValueBox<[String: Metrics.Counter]>, _ key: String, _ make: () -> Metrics.Counter) -> Metrics.Counter {
        box.withLockedValue { counters in
            if let counter = counters[key] { return counter }
            let counter = make()
            counters[key] = counter
            return counter
        }
    }
}
