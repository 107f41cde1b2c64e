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
    private var state = State.awaitingHeaders
    private var readParked = false
    /// DATA that arrived before the backend answered (bounded by the stream's flow-control window).
    private var early: [ByteBuffer] = []
    private var earlyEnd = false
    private let started = NIODeadline.now()

    init(engine: ProxyEngine, listener: ListenerInfo) {
        self.engine = engine
        self.listener = listener
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.state, self.unwrapInboundIn(data)) {
        case (.awaitingHeaders, .headers(let headers)):
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
        context.fireChannelInactive()
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
        let request = UpgradeRequest(
            target: path, authority: headers.first(name: ":authority"), headers: regular,
            scheme: headers.first(name: ":scheme") ?? "https", clientAddress: context.channel.parent?.remoteAddress,
            listener: self.listener.name, transport: .http2
        )
        if let refusal = TargetValidator.validate(path) {
            self.refuse(refusal, request: request, route: nil, context: context)
            return
        }
        let loop = self.engine.loop(context.eventLoop)
        HandshakeFlow.run(request, engine: self.engine, loop: loop) { _ in
            Self.validateExtendedConnect(method: method, protocolName: protocolName, request: request, endStream: endStream)
        }.assumeIsolated().whenSuccess { outcome in
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

    private func splice(_ upgrade: BackendUpgrade, admission: Admission, request: UpgradeRequest, loop: LoopContext, context: ChannelHandlerContext) {
        self.state = .spliced
        let session = Splice.makeSession(
            engine: self.engine, admission: admission, request: request, upgrade: upgrade, listener: self.listener.name,
            started: self.started, loop: loop
        )
        let headers = HTTP2ResponseBuilder.accepted(from: upgrade.head, subprotocol: admission.clientSubprotocol)
        context.writeAndFlush(self.wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        do {
            let stream = context.pipeline.syncOperations
            try stream.addHandler(HTTP2StreamAdapter())
            try stream.addHandler(RelayHandler(session: session, side: .client, isStream: true))
            let backendDecoder = try Splice.attachBackend(upgrade, to: session)
            let early = self.early
            let earlyEnd = self.earlyEnd
            self.early = []
            _ = stream.removeHandler(context: context)
            backendDecoder.assumeIsolated().whenComplete { result in
                guard case .success = result else {
                    session.abort()
                    return
                }
                for bytes in early { session.received(bytes, from: .client) }
                if earlyEnd { session.inputClosed(.client) }
                session.start()
            }
        } catch {
            Splice.abandon(session, upgrade: upgrade, client: context.channel, engine: self.engine, error: error)
        }
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
