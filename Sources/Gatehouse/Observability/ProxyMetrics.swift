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
    /// Connections closed at accept: over `max_pending_connections` or `max_pending_connections_per_ip`.
    let pendingLimitRefusals: Metrics.Counter
    /// HTTP/2 streams refused with REFUSED_STREAM (over `max_concurrent_streams` or `max_handshakes_per_connection`).
    let refusedStreams: Metrics.Counter
    private let closes = NIOLockedValueBox<[String: Metrics.Counter]>([:])
    private let connectFailures = NIOLockedValueBox<[String: Metrics.Counter]>([:])
    private let tlsFailures = NIOLockedValueBox<[String: Metrics.Counter]>([:])
    private let routes = NIOLockedValueBox<[String: RouteMetrics]>([:])
    private let unrouted: RouteMetrics
    /// The process-wide log writer, whose dropped records are exposed here at each scrape.
    private let logWriter: LogWriter
    private let logDropped: Metrics.Counter
    /// Dropped records already added to `logDropped`.
    private let logDroppedSeen = NIOLockedValueBox(0)

    init(logWriter: LogWriter = .standardError) {
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
        self.pendingLimitRefusals = Metrics.Counter(
            label: "gatehouse_connections_refused_total", dimensions: [("reason", "pending_limit")], factory: factory
        )
        self.refusedStreams = Metrics.Counter(
            label: "gatehouse_connections_refused_total", dimensions: [("reason", "refused_stream")], factory: factory
        )
        Metrics.Gauge(label: "gatehouse_build_info", dimensions: [("version", GatehouseVersion.string)], factory: factory).record(1)
        self.unrouted = RouteMetrics(route: "-", factory: factory)
        self.logWriter = logWriter
        self.logDropped = Metrics.Counter(label: "gatehouse_log_dropped_total", factory: factory)
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

    /// Counts one ended connection. The `code` label comes from a bounded set (see ``closeCodeLabel(_:)``): peers
    /// choose close codes, so they must not choose how many series exist.
    func closed(code: UInt16?, by: String) {
        let label = Self.closeCodeLabel(code)
        self.cached(self.closes, "\(label)|\(by)") {
            Metrics.Counter(label: "gatehouse_closes_total", dimensions: [("code", label), ("by", by)], factory: self.factory)
        }.increment()
    }

    /// The `code` label of a close: a registered code (1000-1003, 1007-1014) as its number, `3xxx` or `4xxx` for the
    /// registered and private ranges, `invalid` for anything else, `none` when no code was sent.
    static func closeCodeLabel(_ code: UInt16?) -> String {
        guard let code else { return "none" }
        switch code {
        case 1000...1003, 1007...1014: return String(code)
        case 3000...3999: return "3xxx"
        case 4000...4999: return "4xxx"
        default: return "invalid"
        }
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
        self.bridgeLogDropped()
        return self.registry.emitToBuffer()
    }

    /// Brings `gatehouse_log_dropped_total` up to the writer's count: the writer serves the whole process and knows
    /// nothing of metrics, so its count is carried over when someone looks.
    private func bridgeLogDropped() {
        self.logDroppedSeen.withLockedValue { seen in
            let dropped = self.logWriter.droppedRecords
            if dropped > seen {
                self.logDropped.increment(by: dropped - seen)
                seen = dropped
            }
        }
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
