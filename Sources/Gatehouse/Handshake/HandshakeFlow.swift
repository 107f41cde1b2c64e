import NIOCore
import NIOHTTP1
import Tracing

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
        guard GatehouseTracing.enabled else {
            return Self.proceed(request, engine: engine, loop: loop, cancellation: cancellation, trace: nil, validate: validate)
        }
        // The span continues the client's W3C trace; it ends with the outcome, when the answer is written.
        let span = InstrumentationSystem.tracer.startSpan(
            "websocket.handshake", context: GatehouseTracing.clientContext(request.headers), ofKind: .server
        )
        span.attributes["gatehouse.listener"] = request.listener
        span.attributes["gatehouse.transport"] = request.transport.rawValue
        let outcome = Self.proceed(request, engine: engine, loop: loop, cancellation: cancellation, trace: span.context, validate: validate)
        outcome.whenComplete { result in
            Self.record(result, on: span)
            span.end()
        }
        return outcome
    }

    /// What the handshake span says of the outcome. Never the target (its query may hold a token) nor any header.
    private static func record(_ result: Result<Outcome, Error>, on span: any Span) {
        switch result {
        case .success(.upgraded(let admission, let upgrade)):
            span.attributes["gatehouse.route"] = admission.route.name
            span.attributes["http.response.status_code"] = 101
            span.attributes["gatehouse.backend.server"] = upgrade.server.description
        case .success(.backendRefused(let admission, let server, let head, _)):
            span.attributes["gatehouse.route"] = admission.route.name
            span.attributes["http.response.status_code"] = Int(head.status.code)
            span.attributes["gatehouse.backend.server"] = server.description
            span.attributes["gatehouse.refusal.reason"] = "backend answered \(head.status.code)"
            span.setStatus(.init(code: .error))
        case .success(.refused(let refusal, let route, let backend)):
            if let route { span.attributes["gatehouse.route"] = route }
            if let backend { span.attributes["gatehouse.backend.server"] = backend }
            span.attributes["http.response.status_code"] = Int(refusal.status.code)
            span.attributes["gatehouse.refusal.reason"] = refusal.reason
            span.setStatus(.init(code: .error))
        case .success(.cancelled):
            span.attributes["gatehouse.cancelled"] = true
        case .failure(let error):
            span.recordError(error)
            span.setStatus(.init(code: .error))
        }
    }

    /// The flow itself; `trace` is the handshake span's context (nil with tracing off).
    private static func proceed(
        _ request: UpgradeRequest, engine: ProxyEngine, loop: LoopRuntime, cancellation: HandshakeCancellation,
        trace: ServiceContext?, validate: (ActiveRoute) -> HandshakeRefusal?
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
        return admitted.flatMap { admitted in
            let admission = Self.traced(admitted, trace)
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

    /// `admission` carrying the handshake span's context.
    private static func traced(_ admission: Admission, _ trace: ServiceContext?) -> Admission {
        var admission = admission
        admission.traceContext = trace
        return admission
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
        var backendRequest = admission.backendRequest
        if let trace = admission.traceContext { GatehouseTracing.inject(trace, into: &backendRequest.headers) }
        return BackendConnector.open(
            pool: planned,
            request: backendRequest,
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
