import Metrics
import NIOCore
import Prometheus
import Synchronization

/// Metrics of backend servers, labelled with the backend's name and the server's `HOST:PORT` from the configuration
/// (or its resolved address), so the series are bounded by the configuration:
///
/// - `gatehouse_backend_server_up{backend,server}`: 1 when the server may take new connections (healthy, not
///   ejected, not drained), else 0; brought up to date by ``refresh(_:now:)`` before each exposition and after
///   each check.
/// - `gatehouse_backend_health_checks_total{backend,server,result=pass|fail}`.
/// - `gatehouse_backend_ejections_total{backend,server,reason=active|passive}`.
///
/// Several instances on one factory share the series (the registry returns the existing one for a name and labels).
final class BackendMetrics: Sendable {
    enum EjectionReason: String, Sendable {
        /// `fall` failed health checks in a row.
        case active
        /// `passive.failures` failed attempts within `passive.window`.
        case passive
    }

    private let factory: PrometheusMetricsFactory
    private struct Series: Hashable {
        var backend: String
        var server: String
    }

    /// `up` series published by the last refresh: the ones of servers that left are removed at the next.
    private let published = Mutex<Set<Series>>([])

    init(factory: PrometheusMetricsFactory) {
        self.factory = factory
    }

    /// The registry hands back the existing series, so nothing is cached here: another instance may have removed it.
    private func upGauge(_ series: Series) -> Metrics.Gauge {
        Metrics.Gauge(
            label: "gatehouse_backend_server_up", dimensions: [("backend", series.backend), ("server", series.server)], factory: self.factory
        )
    }

    /// Counts one health check.
    func checked(backend: String, server: BindAddress, passed: Bool) {
        Metrics.Counter(
            label: "gatehouse_backend_health_checks_total",
            dimensions: [("backend", backend), ("server", server.description), ("result", passed ? "pass" : "fail")],
            factory: self.factory
        ).increment()
    }

    /// Counts one ejection.
    func ejected(backend: String, server: BindAddress, reason: EjectionReason) {
        Metrics.Counter(
            label: "gatehouse_backend_ejections_total",
            dimensions: [("backend", backend), ("server", server.description), ("reason", reason.rawValue)],
            factory: self.factory
        ).increment()
    }

    /// Sets every server's `up` gauge from `runtimes` (a passive ejection ends with time, not with an event) and
    /// removes the gauges of servers and backends that are gone.
    func refresh(_ runtimes: [BackendRuntime], now: NIODeadline = .now()) {
        var values: [Series: Bool] = [:]
        for runtime in runtimes {
            for server in runtime.servers where server.drainReason != "removed" {
                values[Series(backend: runtime.name, server: server.address.description)] = server.isEligible(at: now)
            }
        }
        self.published.withLock { published in
            for series in published where values[series] == nil {
                self.upGauge(series).destroy()
            }
            published = Set(values.keys)
            for (series, up) in values {
                self.upGauge(series).record(up ? 1 : 0)
            }
        }
    }
}
