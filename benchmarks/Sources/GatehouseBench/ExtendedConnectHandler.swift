import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOWebSocket

/// Opens a WebSocket on a fresh HTTP/2 stream (RFC 8441 §4–5): sends the extended CONNECT, checks `:status 200`,
/// then replaces itself with a DATA-frame adapter, the WebSocket frame codec and the mode's own handler.
final class ExtendedConnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// Why opening a WebSocket stream failed.
    enum Failure: Error, CustomStringConvertible {
        case refused(String)
        case closedDuringHandshake
        case timedOut

        var description: String {
            switch self {
            case .refused(let status): "extended CONNECT refused: :status \(status)"
            case .closedDuringHandshake: "stream closed before the :status 200 response"
            case .timedOut: "no response to the extended CONNECT in time"
            }
        }
    }

    /// Bound on the stream handshake, so a silent server cannot stall a run.
    static let timeout = TimeAmount.seconds(10)

    private let headers: HPACKHeaders
    private let maxFrameSize: Int
    private let promise: EventLoopPromise<Void>
    private let install: @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    private var requestSent = false
    private var finished = false
    private var timer: Scheduled<Void>?

    init(
        target: BenchTarget,
        maxFrameSize: Int,
        promise: EventLoopPromise<Void>,
        install: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) {
        // RFC 8441 §5: no Upgrade, Connection or Sec-WebSocket-Key; pseudo-header fields first.
        self.headers = HPACKHeaders([
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", target.path),
            (":authority", target.hostHeader),
            ("sec-websocket-version", "13"),
            ("origin", "https://\(target.hostHeader)"),
        ])
        self.maxFrameSize = maxFrameSize
        self.promise = promise
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.timeout) {
            self.fail(context: context, Failure.timedOut)
        }
        if context.channel.isActive { self.sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.sendRequest(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .headers(let response) = self.unwrapInboundIn(data), !self.finished else { return }
        let status = response.headers.first(name: ":status") ?? "none"
        guard status == "200", !response.endStream else {
            self.fail(context: context, Failure.refused(status))
            return
        }
        do {
            let sync = context.pipeline.syncOperations
            try sync.addHandler(StreamBytesAdapter())
            try sync.addHandler(WebSocketFrameEncoder())
            try sync.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: self.maxFrameSize)))
            try self.install(sync)
            self.finished = true
            self.timer?.cancel()
            self.promise.succeed()
            sync.removeHandler(context: context, promise: nil)
        } catch {
            self.fail(context: context, error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(context: context, Failure.closedDuringHandshake)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.fail(context: context, error)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        if !self.finished {
            self.finished = true
            self.promise.fail(Failure.closedDuringHandshake)
        }
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard !self.requestSent else { return }
        self.requestSent = true
        context.writeAndFlush(self.wrapOutboundOut(.headers(.init(headers: self.headers))), promise: nil)
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        guard !self.finished else { return }
        self.finished = true
        self.timer?.cancel()
        self.promise.fail(error)
        context.close(promise: nil)
    }
}

/// Carries a WebSocket's bytes in a stream's DATA frames: inbound DATA payloads go up as bytes, outbound bytes go
/// down as DATA frames. Other frames (trailers, window updates) carry nothing for the WebSocket.
final class StreamBytesAdapter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .data(let frame) = self.unwrapInboundIn(data) else { return }
        if case .byteBuffer(let bytes) = frame.data, bytes.readableBytes > 0 {
            context.fireChannelRead(self.wrapInboundOut(bytes))
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = self.unwrapOutboundIn(data)
        context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: promise)
    }
}
