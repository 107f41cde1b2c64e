import NIOCore
import NIOSSL

/// One configuration made ready to serve: routes resolved to backend pools, listener TLS contexts built, the admin
/// token digested. Built by ``ServingStateBuilder``.
///
/// Immutable; a reload builds a new one and hands it to every loop's ``LoopRuntime``, while connections keep the
/// route they were admitted with.
final class ServingState: Sendable {
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
    /// Backend pools by backend name.
    let pools: [String: BackendPool]
    /// Server state of each backend by backend name, shared by every generation of a backend with that name.
    var backendRuntimes: [String: BackendRuntime] { self.pools.mapValues(\.runtime) }

    init(
        config: ProxyConfig, routes: [ActiveRoute], listenerTLS: [String: ListenerTLSContext], generation: Int, adminTokenDigest: [UInt8]?,
        pools: [String: BackendPool] = [:]
    ) {
        self.config = config
        self.routes = RouteTable(routes.map { (host: $0.config.host, path: $0.config.path, route: $0) })
        self.listenerTLS = listenerTLS
        self.listeners = Dictionary(uniqueKeysWithValues: config.listeners.map { (ListenerKey.of($0), $0) })
        self.generation = generation
        self.adminTokenDigest = adminTokenDigest
        self.pools = pools
    }
}
