import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// What every connection handler shares: per-loop configuration, connection ids, the drain flag and logging.
final class ProxyEngine: Sendable {
    let logger: Logger
    let accessLog: AccessLog
    let metrics: ProxyMetrics
    /// Connections not carrying a WebSocket yet, over every listener and loop.
    let pending = PendingConnectionCounter()
    private let loops: [ObjectIdentifier: LoopContext]
    private let nextID = Atomic<UInt64>(1)
    private let drainingFlag = Atomic<Bool>(false)

    init(loops: [LoopContext], logger: Logger, accessLog: AccessLog, metrics: ProxyMetrics) {
        self.loops = Dictionary(uniqueKeysWithValues: loops.map { (ObjectIdentifier($0.eventLoop), $0) })
        self.logger = logger
        self.accessLog = accessLog
        self.metrics = metrics
    }

    /// The context of the loop a connection runs on.
    func loop(_ eventLoop: EventLoop) -> LoopContext {
        guard let context = self.loops[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("connection on an event loop the proxy does not own")
        }
        return context
    }

    /// Every loop context.
    var allLoops: [LoopContext] { Array(self.loops.values) }

    /// A new process-unique connection id.
    func makeConnectionID() -> UInt64 {
        self.nextID.add(1, ordering: .relaxed).oldValue
    }

    /// Whether the proxy is draining: new handshakes get 503.
    var isDraining: Bool {
        get { self.drainingFlag.load(ordering: .relaxed) }
    }

    func startDraining() {
        self.drainingFlag.store(true, ordering: .relaxed)
    }

    /// The route for a request, or 404 (503 while draining).
    func route(_ request: UpgradeRequest, on loop: LoopContext) -> Result<ActiveRoute, HandshakeRefusal> {
        if self.isDraining { return .failure(.draining()) }
        let host = request.authority.flatMap(HostPattern.normalizedHost(fromAuthority:))
        guard let route = loop.state.routes.match(host: host, path: request.path) else {
            return .failure(.notFound())
        }
        return .success(route)
    }

    /// Opens the backend WebSocket for an admitted request; `cancellation` calls it off when the client leaves.
    func openBackend(_ admission: Admission, on eventLoop: EventLoop, cancellation: HandshakeCancellation) -> EventLoopFuture<BackendAnswer> {
        let logger = self.logger
        let metrics = self.metrics
        let route = admission.route.name
        let backend = admission.route.backend.name
        return BackendConnector.open(
            pool: admission.route.backend,
            request: admission.backendRequest,
            expectedAccept: admission.expectedAccept,
            settings: .init(bufferBytes: admission.route.config.limits.bufferBytes),
            eventLoop: eventLoop,
            cancellation: cancellation,
            onFailure: { failure in
                metrics.backendConnectFailed(backend: backend, server: failure.server)
                logger.warning(
                    "backend attempt failed",
                    metadata: ["route": "\(route)", "server": "\(failure.server)", "error": "\(failure)"]
                )
            }
        )
    }

    /// Logs and counts a refused handshake.
    func refused(_ refusal: HandshakeRefusal, request: UpgradeRequest?, listener: String, client: String, route: String?, backend: String? = nil) {
        (route.map { self.metrics.route($0) } ?? self.metrics.noRoute).handshake(status: refusal.status.code)
        self.accessLog.refused(refusal, request: request, listener: listener, client: client, route: route, backend: backend)
    }
}

/// A request that passed routing and policy, with what to send the backend.
struct Admission {
    /// The route chosen.
    let route: ActiveRoute
    /// The upgrade request for the backend.
    let backendRequest: HTTPRequestHead
    /// The `Sec-WebSocket-Accept` the backend must answer.
    let expectedAccept: String
    /// Who the token says the client is, when the route requires one.
    let identity: AuthIdentity?
    /// Subprotocol to answer the client with when the backend was offered none (the token entry was alone).
    let clientSubprotocol: String?
    /// The route's connection slot, returned when the connection ends or is refused later.
    let ticket: AdmissionTicket
}
