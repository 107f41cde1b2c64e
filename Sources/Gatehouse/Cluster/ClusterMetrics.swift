import Metrics
import Prometheus

/// Cluster mode's metrics: store health, bus lag, leases and revocations. Labels come from fixed sets.
final class ClusterMetrics: Sendable {
    /// 1 while the store answers heartbeats.
    let storeUp: Metrics.Gauge
    /// Live nodes the last heartbeat saw, this one included.
    let liveNodes: Metrics.Gauge
    /// Seconds from a bus message's publication (sender's clock) to its handling here.
    let busLag: Metrics.Timer
    let busMessages: Metrics.Counter
    /// Bus payloads that could not be read.
    let busMalformed: Metrics.Counter
    let leasesGranted: Metrics.Counter
    let leasesRefused: Metrics.Counter
    /// Handshakes of `scope: cluster` routes decided without the store (`on_store_error`).
    let leasesWithoutStore: Metrics.Counter
    /// Revocations held in memory.
    let revocations: Metrics.Gauge
    /// Store operations that failed or timed out.
    let storeErrors: Metrics.Counter

    init(factory: PrometheusMetricsFactory) {
        var factory = factory
        factory.durationHistogramBuckets["gatehouse_cluster_bus_lag_seconds"] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        self.storeUp = Metrics.Gauge(label: "gatehouse_cluster_store_up", factory: factory)
        self.liveNodes = Metrics.Gauge(label: "gatehouse_cluster_nodes", factory: factory)
        self.busLag = Metrics.Timer(label: "gatehouse_cluster_bus_lag_seconds", factory: factory)
        self.busMessages = Metrics.Counter(label: "gatehouse_cluster_bus_messages_total", factory: factory)
        self.busMalformed = Metrics.Counter(label: "gatehouse_cluster_bus_malformed_total", factory: factory)
        self.leasesGranted = Metrics.Counter(label: "gatehouse_cluster_leases_total", dimensions: [("result", "granted")], factory: factory)
        self.leasesRefused = Metrics.Counter(label: "gatehouse_cluster_leases_total", dimensions: [("result", "refused")], factory: factory)
        self.leasesWithoutStore = Metrics.Counter(
            label: "gatehouse_cluster_leases_total", dimensions: [("result", "store_unavailable")], factory: factory
        )
        self.revocations = Metrics.Gauge(label: "gatehouse_cluster_revocations", factory: factory)
        self.storeErrors = Metrics.Counter(label: "gatehouse_cluster_store_errors_total", factory: factory)
        self.storeUp.record(0)
    }
}
