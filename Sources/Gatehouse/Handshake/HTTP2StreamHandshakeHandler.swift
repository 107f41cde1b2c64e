import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Takes one HTTP/2 stream through the same routing, policy and backend handshake as an HTTP/1.1 upgrade: an
/// extended CONNECT with `:protocol websocket` (RFC 8441) is answered `:status 200` once the backend's 101 is in,
/// and the stream then carries the WebSocket's frames in its DATA frames.
final class HTTP2StreamHandshakeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        case awaitingHeaders
        case admitting
        case answered
        case spliced
        case closed
    }

    private let engine: ProxyEngine
    private let listener: ListenerInfo
    private let watcher: HTTP2ConnectionWatcher?
    /// False when the stream came in over the advertised `max_concurrent_streams`: it is refused.
    private let withinStreamLimit: Bool
    /// Whether this stream holds one of the connection's handshake slots.
    private var holdsHandshakeSlot = false
    /// Calls off the backend attempt when the stream or its connection goes away while admitting.
    private var cancellation: HandshakeCancellation?
    private var state = State.awaitingHeaders
    private var readParked = false
    /// DATA that arrived before the backend answered (bounded by the stream's flow-control window).
    private var early: [ByteBuffer] = []
    private var earlyEnd = false
    private let started = NIODeadline.now()
    /// The client certificate the connection's TLS handshake verified: every stream carries it.
    private let clientCertificate: ClientCertificate?

    init(
        engine: ProxyEngine, listener: ListenerInfo, watcher: HTTP2ConnectionWatcher? = nil, withinStreamLimit: Bool = true,
        clientCertificate: ClientCertificate? = nil
    ) {
        self.engine = engine
        self.clientCertificate = clientCertificate
        self.listener = listener
        self.watcher = watcher
        self.withinStreamLimit = withinStreamLimit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.state, self.unwrapInboundIn(data)) {
        case (.awaitingHeaders, .headers(let headers)):
            // RFC 9113 §5.1.2: a stream over the advertised limit is a stream error, never the connection's end.
            // Handshakes in flight are capped per connection too: each may hold a backend connection.
            guard self.withinStreamLimit, self.watcher?.beginHandshake() ?? true else {
                self.refuseStream(context: context)
                return
            }
            self.holdsHandshakeSlot = self.watcher != nil
            self.state = .admitting
            self.readParked = true
            self.handle(headers.headers, endStream: headers.endStream, context: context)
        case (.admitting, .data(let frame)):
            if case .byteBuffer(let bytes) = frame.data, bytes.readableBytes > 0 { self.early.append(bytes) }
            if frame.endStream { self.earlyEnd = true }
        default:
            break
        }
    }

    func read(context: ChannelHandlerContext) {
        if !self.readParked { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.state = .closed
        self.cancellation?.cancel()
        self.releaseHandshakeSlot()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.releaseHandshakeSlot()
    }

    private func releaseHandshakeSlot() {
        guard self.holdsHandshakeSlot else { return }
        self.holdsHandshakeSlot = false
        self.watcher?.endHandshake()
    }

    /// RST_STREAM REFUSED_STREAM: the client may retry the request, on this connection or another.
    private func refuseStream(context: ChannelHandlerContext) {
        self.state = .answered
        self.engine.metrics.refusedStreams.increment()
        context.writeAndFlush(self.wrapOutboundOut(.rstStream(.refusedStream)), promise: nil)
    }

    private func handle(_ headers: HPACKHeaders, endStream: Bool, context: ChannelHandlerContext) {
        let method = headers.first(name: ":method") ?? ""
        let protocolName = headers.first(name: ":protocol")
        let path = headers.first(name: ":path") ?? ""
        var regular = HTTPHeaders()
        var cookies: [String] = []
        for (name, value, _) in headers where !name.hasPrefix(":") {
            if name == "cookie" { cookies.append(value) } else { regular.add(name: name, value: value) }
        }
        // HTTP/2 may split cookies over several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
        if !cookies.isEmpty { regular.add(name: "cookie", value: cookies.joined(separator: "; ")) }
        let authorities = headers[":authority"]
        // X-Forwarded-Proto says how the client reached the proxy: the listener knows, the client's :scheme does not.
        var request = UpgradeRequest(
            target: path, authority: authorities.first, headers: regular,
            scheme: self.listener.isTLS ? "https" : "http", clientAddress: context.channel.parent?.remoteAddress,
            listener: self.listener.name, transport: .http2, clientCertificate: self.clientCertificate
        )
        // The same rule as HTTP/1.1's Host: an :authority that does not parse is refused, never read as "no host".
        if authorities.count > 1 || authorities.first.map({ HostPattern.normalizedHost(fromAuthority: $0) == nil }) == true {
            self.refuse(.badRequest("exactly one valid :authority is required"), request: request, route: nil, context: context)
            return
        }
        switch RequestTarget.normalize(path) {
        case .failure(let refusal):
            self.refuse(refusal, request: request, route: nil, context: context)
            return
        case .success(let target):
            request.target = target
        }
        let loop = self.engine.loop(context.eventLoop)
        let cancellation = HandshakeCancellation(eventLoop: context.eventLoop)
        self.cancellation = cancellation
        HandshakeFlow.run(request, engine: self.engine, loop: loop, cancellation: cancellation) { _ in
            Self.validateExtendedConnect(method: method, protocolName: protocolName, request: request, endStream: endStream)
        }.assumeIsolated().whenSuccess { outcome in
            cancellation.finish()
            self.releaseHandshakeSlot()
            switch outcome {
            case .upgraded(let admission, let upgrade):
                guard case .admitting = self.state else {
                    admission.ticket.release()
                    upgrade.channel.close(promise: nil)
                    return
                }
                self.splice(upgrade, admission: admission, request: request, loop: loop, context: context)
            case .backendRefused(let admission, let server, let head, let body):
                self.engine.refused(
                    HandshakeRefusal(head.status, "backend answered \(head.status.code)"), request: request,
                    listener: self.listener.name, client: request.clientAddress.map(ConnectionRecord.describe) ?? "-",
                    route: admission.route.name, backend: server.description
                )
                self.answer(HTTP2ResponseBuilder.relayed(head, bodyLength: body.readableBytes), body: body, context: context)
            case .refused(let refusal, let route, let backend):
                self.refuse(refusal, request: request, route: route, backend: backend, context: context)
            case .cancelled:
                break  // the stream is gone
            }
        }
    }

    /// The RFC 8441 checks, once a route matched: an extended CONNECT for `websocket`, with `:authority`, an open
    /// stream and `sec-websocket-version: 13`.
    private static func validateExtendedConnect(method: String, protocolName: String?, request: UpgradeRequest, endStream: Bool) -> HandshakeRefusal? {
        guard method == "CONNECT", protocolName?.lowercased() == "websocket" else {
            return .upgradeRequired("this endpoint only accepts WebSockets (extended CONNECT with :protocol websocket)")
        }
        guard request.authority != nil, !endStream else {
            return .badRequest("an extended CONNECT needs :authority and an open stream")
        }
        guard request.headers["sec-websocket-version"] == ["13"] else {
            return .upgradeRequired("sec-websocket-version 13 is required")
        }
        return nil
    }

    private func splice(_ upgrade: BackendUpgrade, admission: Admission, request: UpgradeRequest, loop: LoopRuntime, context: ChannelHandlerContext) {
        self.state = .spliced
        self.watcher?.streamRelayed()
        let connection = RelayConnection.open(
            engine: self.engine, admission: admission, request: request, upgrade: upgrade, listener: self.listener.name,
            started: self.started, loop: loop
        )
        let headers = HTTP2ResponseBuilder.accepted(from: upgrade.head, subprotocol: admission.clientSubprotocol)
        context.writeAndFlush(self.wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        let early = self.early
        self.early = []
        connection.spliceHTTP2Stream(context, upgrade: upgrade, early: early, earlyEnd: self.earlyEnd)
    }

    private func refuse(_ refusal: HandshakeRefusal, request: UpgradeRequest, route: String?, backend: String? = nil, context: ChannelHandlerContext) {
        guard case .admitting = self.state else { return }
        self.engine.refused(
            refusal, request: request, listener: self.listener.name,
            client: request.clientAddress.map(ConnectionRecord.describe) ?? "-", route: route, backend: backend
        )
        let (headers, body) = HTTP2ResponseBuilder.refusal(refusal)
        self.answer(headers, body: context.channel.allocator.buffer(string: body), context: context)
    }

    private func answer(_ headers: HPACKHeaders, body: ByteBuffer, context: ChannelHandlerContext) {
        self.state = .answered
        self.releaseHandshakeSlot()
        let written = context.eventLoop.makePromise(of: Void.self)
        if body.readableBytes > 0 {
            context.write(self.wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: written)
        } else {
            context.writeAndFlush(self.wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: written)
        }
        // Whatever the client would still send on this stream is not wanted: reset it once the answer is out.
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
