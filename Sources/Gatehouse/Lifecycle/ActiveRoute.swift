/// A route ready to serve: its configuration and the pool of its backend.
final class ActiveRoute: Sendable {
    /// The route as configured.
    let config: RouteConfig
    /// Where its connections go.
    let backend: BackendPool
    /// Live-connection counters, shared by every generation of a route with this name.
    let counters: RouteCounters
    /// Token requirement; nil when the route needs none.
    let auth: RouteAuth?
    /// The route's metrics.
    let metrics: RouteMetrics

    init(config: RouteConfig, backend: BackendPool, counters: RouteCounters, auth: RouteAuth?, metrics: RouteMetrics) {
        self.config = config
        self.backend = backend
        self.counters = counters
        self.auth = auth
        self.metrics = metrics
    }

    var name: String { self.config.name }
}
