import NIOCore
import NIOHTTP1

/// The one path every WebSocket request takes, whichever HTTP version carried it: route, the transport's own
/// upgrade checks, policy (Origin, limits, token), then the backend handshake. The handlers of HTTP/1.1 and
/// HTTP/2 only turn its outcome into their protocol's answer.
enum HandshakeFlow {
    /// How a request ended its handshake.
    enum Outcome {
        /// The backend accepted: splice the client to `upgrade`.
        case upgraded(Admission, BackendUpgrade)
        /// The backend answered something else (401, 403, 500…): relay it.
        case backendRefused(Admission, server: BindAddress, head: HTTPResponseHead, body: ByteBuffer)
        /// The proxy refuses.
        case refused(HandshakeRefusal, route: String?, backend: String?)
        /// The client left before the outcome: nothing to answer, the backend attempt is closed.
        case cancelled
    }

    /// Runs the flow on `eventLoop`. `validate` holds the transport's checks once the route is known (a nil
    /// result lets the request through). The route's connection slot is released on every outcome but `upgraded`.
    /// `cancellation` is the client side's way to call the backend attempt off.
    static func run(
        _ request: UpgradeRequest, engine: ProxyEngine, loop: LoopRuntime, cancellation: HandshakeCancellation,
        validate: (ActiveRoute) -> HandshakeRefusal?
    ) -> EventLoopFuture<Outcome> {
        let eventLoop = loop.eventLoop
        let route: ActiveRoute
        switch Self.route(request, engine: engine, loop: loop) {
        case .failure(let refusal): return eventLoop.makeSucceededFuture(.refused(refusal, route: nil, backend: nil))
        case .success(let matched): route = matched
        }
        if let refusal = validate(route) {
            return eventLoop.makeSucceededFuture(.refused(refusal, route: route.name, backend: nil))
        }
        let admitted = HandshakePolicy.authorize(
            request, route: route, connectionID: engine.makeConnectionID(), cluster: engine.cluster, on: eventLoop
        )
        return admitted.flatMap { admission in
            // The policy check may have waited (token verification): the client may be gone already.
            guard !cancellation.isCancelled else {
                admission.ticket.release()
                return eventLoop.makeSucceededFuture(Outcome.cancelled)
            }
            return Self.openBackend(admission, request: request, engine: engine, on: eventLoop, cancellation: cancellation).map { answer -> Outcome in
                switch answer {
                case .upgraded(let upgrade):
                    return .upgraded(admission, upgrade)
                case .refused(let server, let head, let body):
                    admission.ticket.release()
                    return .backendRefused(admission, server: server, head: head, body: body)
                }
            }.flatMapErrorThrowing { error in
                admission.ticket.release()
                throw error
            }
        }.flatMapErrorThrowing { error -> Outcome in
            if error is HandshakeCancellation.Cancelled { return .cancelled }
            if let failure = error as? BackendFailure {
                return .refused(failure.refusal, route: route.name, backend: failure.server)
            }
            let refusal = (error as? HandshakeRefusal) ?? HandshakeRefusal(.internalServerError, "policy check failed")
            return .refused(refusal, route: route.name, backend: nil)
        }
    }

    /// The route for a request in the loop's current state, or 404 (503 while draining).
    private static func route(_ request: UpgradeRequest, engine: ProxyEngine, loop: LoopRuntime) -> Result<ActiveRoute, HandshakeRefusal> {
        if engine.isDraining { return .failure(.draining()) }
        let host = request.authority.flatMap(HostPattern.normalizedHost(fromAuthority:))
        guard let route = loop.state.routes.match(host: host, path: request.path) else {
            return .failure(.notFound())
        }
        return .success(route)
    }

    /// Opens the backend WebSocket for an admitted request; `cancellation` calls it off when the client leaves.
    /// The server order is chosen here (balancing, the hash key of the request); the first choice counts the
    /// handshake as pending until it ends, so least connections sees handshakes in flight.
    private static func openBackend(
        _ admission: Admission, request: UpgradeRequest, engine: ProxyEngine, on eventLoop: EventLoop, cancellation: HandshakeCancellation
    ) -> EventLoopFuture<BackendAnswer> {
        let logger = engine.logger
        let metrics = engine.metrics
        let route = admission.route.name
        let backend = admission.route.backend.name
        let pool = admission.route.backend
        let key = pool.balance == .hash ? pool.hashKey?.value(in: request, subject: admission.identity?.subject) : nil
        let planned = pool.planned(key: key)
        let first = planned.attemptOrder().first
        if let first { pool.runtime.handshakeStarted(first) }
        return BackendConnector.open(
            pool: planned,
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
            },
            onEjected: { server in
                // Passive ejection only stops new connections: live ones on the server may be healthy.
                BackendMetrics(factory: metrics.factory).ejected(backend: backend, server: server, reason: .passive)
                logger.notice("backend server ejected: failed attempts", metadata: ["backend": "\(backend)", "server": "\(server)"])
            }
        ).always { _ in
            if let first { pool.runtime.handshakeEnded(first) }
        }
    }
}
