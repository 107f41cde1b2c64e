import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// Reads the HTTP/1.1 request head of a new client connection and takes it through routing, policy and the
/// backend handshake; on success it hands both channels to the relay, otherwise it answers the refusal.
final class HTTP1HandshakeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case awaitingHead
        case admitting
        case refusing
        case spliced
        case closed
    }

    private let engine: ProxyEngine
    private let listener: ListenerInfo
    private let headGuard: HeadSizeGuard
    private let maxHeadBytes: Int
    private let handshakeTimeout: TimeAmount
    /// This connection's place among the not-yet-upgraded ones, given back once it is relayed.
    private let pending: PendingTicket?
    /// Calls off the backend attempt when the client leaves while admitting.
    private var cancellation: HandshakeCancellation?
    private var state = State.awaitingHead
    private var readParked = false
    private var timer: Scheduled<Void>?
    /// When the connection was accepted: the handshake deadline counts from here, TLS included.
    private let accepted: NIODeadline
    /// When the request head arrived: handshake latency counts from here.
    private var started = NIODeadline.now()
    /// The client certificate the TLS handshake verified.
    private let clientCertificate: ClientCertificate?

    init(
        engine: ProxyEngine, listener: ListenerInfo, headGuard: HeadSizeGuard, limits: LimitsConfig, accepted: NIODeadline,
        pending: PendingTicket? = nil, clientCertificate: ClientCertificate? = nil
    ) {
        self.engine = engine
        self.clientCertificate = clientCertificate
        self.pending = pending
        self.listener = listener
        self.headGuard = headGuard
        self.maxHeadBytes = limits.maxHeadBytes
        self.handshakeTimeout = TimeAmount(limits.handshakeTimeout)
        self.accepted = accepted
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.armTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.armTimer(context: context)
        context.fireChannelActive()
    }

    private func armTimer(context: ChannelHandlerContext) {
        guard self.timer == nil else { return }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: self.accepted + self.handshakeTimeout) {
            guard case .awaitingHead = self.state else { return }
            self.refuse(HandshakeRefusal(.requestTimeout, "request head not received in time"), request: nil, route: nil, context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .awaitingHead = self.state, case .head(let head) = self.unwrapInboundIn(data) else {
            return  // body bytes of a refused request, or parts after the head: nothing to do with them
        }
        self.headGuard.markHeadComplete()
        self.started = .now()
        self.timer?.cancel()
        // Reading goes on while admitting, so a client that closes or resets is noticed (TLS close_notify
        // included) and its backend attempt cancelled; what it sends meanwhile waits in the decoder (bounded by
        // HeadSizeGuard) and is handed to the relay with the decoder's removal.
        self.state = .admitting
        self.handle(head, context: context)
    }

    func read(context: ChannelHandlerContext) {
        if !self.readParked { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is HeadSizeGuard.Overflow, case .awaitingHead = self.state {
            self.refuse(.headTooLarge(limit: self.maxHeadBytes), request: nil, route: nil, context: context)
        } else if event is HeadSizeGuard.EarlyInputLimit, case .admitting = self.state {
            self.readParked = true  // enough early input: the rest waits in the socket
        } else if case ChannelEvent.inputClosed = event {
            if case .refusing = self.state { context.close(promise: nil) } else { self.clientGone(context: context) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch self.state {
        case .awaitingHead:
            if let parserError = error as? HTTPParserError {
                let refusal: HandshakeRefusal =
                    parserError == .headerOverflow
                    ? .headTooLarge(limit: self.maxHeadBytes) : .badRequest("malformed HTTP request")
                self.refuse(refusal, request: nil, route: nil, context: context)
            } else {
                if error is NIOSSLError || error is BoringSSLError {
                    self.engine.metrics.tlsHandshakeFailed(listener: self.listener.name)
                }
                self.clientGone(context: context)
            }
        case .refusing, .spliced, .closed:
            context.close(promise: nil)
        case .admitting:
            self.clientGone(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.state = .closed
        self.cancellation?.cancel()
        context.fireChannelInactive()
    }

    private func clientGone(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.state = .closed
        context.close(promise: nil)
    }

    // MARK: Admission

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        var request = UpgradeRequest(
            target: head.uri,
            authority: head.headers.first(name: "host"),
            headers: head.headers,
            scheme: self.listener.isTLS ? "https" : "http",
            clientAddress: context.channel.remoteAddress,
            listener: self.listener.name,
            transport: .http1,
            clientCertificate: self.clientCertificate
        )
        if Self.approximateSize(of: head) > self.maxHeadBytes {
            self.refuse(.headTooLarge(limit: self.maxHeadBytes), request: request, route: nil, context: context)
            return
        }
        if let refusal = HTTP1UpgradeValidator.validateFraming(head) {
            self.refuse(refusal, request: request, route: nil, context: context)
            return
        }
        switch RequestTarget.normalize(head.uri) {
        case .failure(let refusal):
            self.refuse(refusal, request: request, route: nil, context: context)
            return
        case .success(let target):
            request.target = target
        }
        let loop = self.engine.loop(context.eventLoop)
        let cancellation = HandshakeCancellation(eventLoop: context.eventLoop)
        self.cancellation = cancellation
        let flow = HandshakeFlow.run(request, engine: self.engine, loop: loop, cancellation: cancellation) { _ in
            HTTP1UpgradeValidator.validateUpgrade(head)
        }
        flow.assumeIsolated().whenSuccess { outcome in
            cancellation.finish()
            switch outcome {
            case .upgraded(let admission, let upgrade):
                guard case .admitting = self.state else {
                    admission.ticket.release()
                    upgrade.channel.close(promise: nil)
                    return
                }
                self.splice(upgrade, admission: admission, request: request, loop: loop, context: context)
            case .backendRefused(let admission, let server, let head, let body):
                self.relayRefusal(head: head, body: body, server: server, request: request, admission: admission, context: context)
            case .refused(let refusal, let route, let backend):
                self.refuse(refusal, request: request, route: route, backend: backend, context: context)
            case .cancelled:
                break  // the client is gone and its connection closed
            }
        }
    }

    // MARK: Splice

    private func splice(_ upgrade: BackendUpgrade, admission: Admission, request: UpgradeRequest, loop: LoopRuntime, context: ChannelHandlerContext) {
        self.state = .spliced
        self.pending?.release()
        // The relay issues the next read once it has started.
        self.readParked = true
        let connection = RelayConnection.open(
            engine: self.engine, admission: admission, request: request, upgrade: upgrade, listener: self.listener.name,
            started: self.started, loop: loop
        )
        context.write(self.wrapOutboundOut(.head(ClientResponse.switchingProtocols(from: upgrade.head, subprotocol: admission.clientSubprotocol))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        connection.spliceHTTP1(client: context, upgrade: upgrade, bufferBytes: admission.route.config.limits.bufferBytes)
    }

    // MARK: Refusals

    private func relayRefusal(head: HTTPResponseHead, body: ByteBuffer, server: BindAddress, request: UpgradeRequest, admission: Admission, context: ChannelHandlerContext) {
        guard case .admitting = self.state else { return }
        self.state = .refusing
        self.engine.refused(
            HandshakeRefusal(head.status, "backend answered \(head.status.code)"), request: request,
            listener: self.listener.name, client: request.clientAddress.map(ConnectionRecord.describe) ?? "-",
            route: admission.route.name, backend: server.description
        )
        var response = ClientResponse.relayedRefusal(from: head, bodyLength: body.readableBytes)
        response.headers.replaceOrAdd(name: "Connection", value: "close")
        context.write(self.wrapOutboundOut(.head(response)), promise: nil)
        if body.readableBytes > 0 { context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        self.finishRefusal(context: context)
    }

    private func refuse(_ refusal: HandshakeRefusal, request: UpgradeRequest?, route: String?, backend: String? = nil, context: ChannelHandlerContext) {
        switch self.state {
        case .awaitingHead, .admitting: break
        case .refusing, .spliced, .closed: return
        }
        self.state = .refusing
        self.timer?.cancel()
        self.engine.refused(
            refusal, request: request, listener: self.listener.name,
            client: context.channel.remoteAddress.map(ConnectionRecord.describe) ?? "-", route: route, backend: backend
        )
        let (head, body) = refusal.responseHead(closing: true)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        self.finishRefusal(context: context)
    }

    /// Sends the answer, then closes without losing it: output is shut first and the rest of the client's
    /// input is read and discarded for a moment, so unread bytes do not turn the close into a reset that
    /// could destroy the answer in flight.
    private func finishRefusal(context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) { context.close(promise: nil) }
            self.readParked = false
            context.read()
        }
    }

    /// The size of the head as sent, give or take whitespace.
    static func approximateSize(of head: HTTPRequestHead) -> Int {
        var size = head.method.rawValue.utf8.count + head.uri.utf8.count + 12
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        return size + 2
    }
}

/// How the listener that accepted a connection presents itself to the handshake.
struct ListenerInfo: Sendable {
    let name: String
    let isTLS: Bool
}
