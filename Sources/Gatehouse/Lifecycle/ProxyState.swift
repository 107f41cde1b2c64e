import NIOCore
import NIOSSL

/// One configuration made ready to serve: routes resolved to backend pools, TLS contexts built.
///
/// Immutable; a reload builds a new one and hands it to every event loop, while connections keep the route they
/// were admitted with.
final class ProxyState: Sendable {
    /// The configuration it was built from.
    let config: ProxyConfig
    /// Routing table.
    let routes: RouteTable<ActiveRoute>
    /// TLS contexts of listeners, by listener name.
    let listenerTLS: [String: ListenerTLSContext]
    /// Listeners by ``ListenerKey``: what a socket's accepted connections get.
    let listeners: [String: ListenerConfig]
    /// Increases with every successful reload.
    let generation: Int
    /// SHA-256 of the admin token, when one is required.
    let adminTokenDigest: [UInt8]?

    init(config: ProxyConfig, routes: [ActiveRoute], listenerTLS: [String: ListenerTLSContext], generation: Int, adminTokenDigest: [UInt8]?) {
        self.config = config
        self.routes = RouteTable(routes.map { (host: $0.config.host, path: $0.config.path, route: $0) })
        self.listenerTLS = listenerTLS
        self.listeners = Dictionary(uniqueKeysWithValues: config.listeners.map { (ListenerKey.of($0), $0) })
        self.generation = generation
        self.adminTokenDigest = adminTokenDigest
    }
}

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
