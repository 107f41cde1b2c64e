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
        _ request: UpgradeRequest, engine: ProxyEngine, loop: LoopContext, cancellation: HandshakeCancellation,
        validate: (ActiveRoute) -> HandshakeRefusal?
    ) -> EventLoopFuture<Outcome> {
        let eventLoop = loop.eventLoop
        let route: ActiveRoute
        switch engine.route(request, on: loop) {
        case .failure(let refusal): return eventLoop.makeSucceededFuture(.refused(refusal, route: nil, backend: nil))
        case .success(let matched): route = matched
        }
        if let refusal = validate(route) {
            return eventLoop.makeSucceededFuture(.refused(refusal, route: route.name, backend: nil))
        }
        return HandshakePolicy.authorize(request, route: route, on: eventLoop).flatMap { admission in
            // The policy check may have waited (token verification): the client may be gone already.
            guard !cancellation.isCancelled else {
                admission.ticket.release()
                return eventLoop.makeSucceededFuture(Outcome.cancelled)
            }
            return engine.openBackend(admission, on: eventLoop, cancellation: cancellation).map { answer -> Outcome in
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
}
