import Foundation
import NIOCore
import NIOHTTP1

/// The part of joining a client to an upgraded backend connection that does not depend on the client's HTTP
/// version: the session, its registration and metrics, and the backend's pipeline surgery.
enum Splice {
    /// Creates and registers the relay session of an admitted, upgraded connection.
    static func makeSession(
        engine: ProxyEngine, admission: Admission, request: UpgradeRequest, upgrade: BackendUpgrade, listener: String,
        started: NIODeadline, loop: LoopContext
    ) -> RelaySession {
        let route = admission.route
        let record = ConnectionRecord(
            id: engine.makeConnectionID(), listener: listener, route: route.name, request: request,
            subject: admission.identity?.subject, backendServer: upgrade.server.description, started: started,
            startedWallClock: Date().timeIntervalSince1970
        )
        let settings = RelaySettings(
            limits: route.config.limits,
            negotiatedExtensions: upgrade.head.headers["sec-websocket-extensions"].flatMap { HTTPToken.list($0) },
            expiresAt: route.config.enforceExpiry ? admission.identity?.expiresAt.map(NIODeadline.fromWallClock) : nil
        )
        let ticket = admission.ticket
        let session = RelaySession(
            record: record, settings: settings, metrics: route.metrics,
            onTraffic: { session in loop.trafficPending.append(session) },
            onEnd: { session in engine.finished(session, ticket: ticket, on: loop) }
        )
        engine.register(session, on: loop)
        route.metrics.handshake(status: 101)
        route.metrics.active.increment()
        route.metrics.handshakeDuration.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        return session
    }

    /// Puts the relay handler on the backend channel and takes its HTTP handlers out. The returned future
    /// completes once the response decoder is gone (its removal hands on any frames that followed the 101).
    static func attachBackend(_ upgrade: BackendUpgrade, to session: RelaySession) throws -> EventLoopFuture<Void> {
        let backend = upgrade.channel.pipeline.syncOperations
        try backend.addHandler(RelayHandler(session: session, side: .backend))
        _ = backend.removeHandler(try backend.handler(type: BackendHandshakeHandler.self))
        _ = backend.removeHandler(try backend.handler(type: NIOHTTPRequestHeadersValidator.self))
        _ = backend.removeHandler(try backend.handler(type: HTTPRequestEncoder.self))
        // The decoder also watches outbound writes: nothing of the client's may be written before it is out.
        return backend.removeHandler(try backend.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self))
    }

    /// Undoes a splice that failed half way.
    static func abandon(_ session: RelaySession, upgrade: BackendUpgrade, client: Channel, engine: ProxyEngine, error: Error) {
        engine.logger.error("splice failed", metadata: ["error": "\(error)"])
        upgrade.channel.close(promise: nil)
        client.close(promise: nil)
        session.abort()
    }
}
