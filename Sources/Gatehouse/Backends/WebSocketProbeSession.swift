import NIOCore
import NIOHTTP1
import NIOWebSocket

/// One running health check on its channel: holds the ``WebSocketProbeSteps``, the deadline and the result, and
/// switches the pipeline from HTTP to frames after the 101. Lives on the channel's event loop.
final class WebSocketProbeSession {
    /// Largest frame read from the server while waiting for the pong or the close (data frames are ignored, but the
    /// frame decoder holds whole frames).
    static let maxFrameSize = 1 << 18

    private var steps: WebSocketProbeSteps
    private let promise: EventLoopPromise<WebSocketProbe.Outcome>
    private var deadline: Scheduled<Void>?
    private var channel: Channel?

    init(steps: WebSocketProbeSteps, promise: EventLoopPromise<WebSocketProbe.Outcome>) {
        self.steps = steps
        self.promise = promise
    }

    /// Arms the deadline of the whole check (connect included).
    func arm(timeout: TimeAmount, on eventLoop: EventLoop) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        self.deadline = eventLoop.scheduleTask(in: timeout) {
            let session = bound.value
            session.perform(session.steps.timedOut())
        }
    }

    func attach(_ channel: Channel) {
        self.channel = channel
        if case .finished = self.steps.stage { channel.close(promise: nil) }
    }

    /// Connect, TLS or I/O failure, or the connection ended early.
    func ended(_ why: String) {
        self.perform(self.steps.connectionEnded(why))
    }

    fileprivate func answer(_ head: HTTPResponseHead) {
        self.perform(self.steps.answer(head))
    }

    fileprivate func upgradeEnded() {
        self.perform(self.steps.upgradeEnded())
    }

    fileprivate func frame(_ frame: WebSocketFrame) {
        self.perform(self.steps.frame(frame.opcode, payload: Array(frame.unmaskedData.readableBytesView)))
    }

    private func perform(_ action: WebSocketProbeSteps.Action) {
        switch action {
        case .none:
            break
        case .sendPing(let payload):
            self.switchToFrames(thenPing: payload)
        case .sendClose:
            var code = ByteBuffer()
            code.write(webSocketErrorCode: .normalClosure)
            self.channel?.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: code), promise: nil)
        case .pass:
            self.finish(.passed)
        case .fail(let why):
            self.finish(.failed(why))
        }
    }

    private func finish(_ outcome: WebSocketProbe.Outcome) {
        self.deadline?.cancel()
        self.deadline = nil
        self.promise.succeed(outcome)
        self.channel?.close(promise: nil)
    }

    /// Replaces the HTTP codec by the frame codec (the decoder's left-over bytes go to the frame decoder) and pings.
    /// Runs outside the HTTP decoder's call stack.
    private func switchToFrames(thenPing payload: [UInt8]) {
        guard let channel = self.channel else { return }
        let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
        channel.eventLoop.assumeIsolated().execute {
            let session = bound.value
            do {
                let sync = channel.pipeline.syncOperations
                let decoder = try sync.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self)
                let frameDecoder = ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: Self.maxFrameSize))
                try sync.addHandler(frameDecoder, position: .after(decoder))
                try sync.addHandler(WebSocketFrameEncoder(), position: .after(frameDecoder))
                try sync.addHandler(FrameStage(session: session))
                sync.removeHandler(try sync.handler(type: HTTPStage.self), promise: nil)
                sync.removeHandler(try sync.handler(type: HTTPRequestEncoder.self), promise: nil)
                // The response decoder also looks at outbound request parts: write frames only once it is gone.
                sync.removeHandler(decoder).assumeIsolated().whenComplete { result in
                    guard case .success = result else {
                        bound.value.ended("cannot switch to frames")
                        return
                    }
                    var data = channel.allocator.buffer(capacity: payload.count)
                    data.writeBytes(payload)
                    // The encoder masks with the key: clients mask every frame (RFC 6455 §5.3).
                    channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: data), promise: nil)
                }
            } catch {
                session.ended("cannot switch to frames: \(error)")
            }
        }
    }

    /// Sends the upgrade request and hands the answer to the session.
    final class HTTPStage: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundOut = HTTPClientRequestPart

        private let session: WebSocketProbeSession
        private let request: HTTPRequestHead

        init(session: WebSocketProbeSession, request: HTTPRequestHead) {
            self.session = session
            self.request = request
        }

        func channelActive(context: ChannelHandlerContext) {
            context.write(self.wrapOutboundOut(.head(self.request)), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head): self.session.answer(head)
            case .body: break
            case .end: self.session.upgradeEnded()
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.session.ended("connection closed before the upgrade answer")
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            self.session.ended(error is HTTPParserError ? "not an HTTP/1.1 answer" : "\(error)")
        }
    }

    /// Hands the server's frames to the session.
    final class FrameStage: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = WebSocketFrame

        private let session: WebSocketProbeSession

        init(session: WebSocketProbeSession) {
            self.session = session
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.session.frame(self.unwrapInboundIn(data))
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.session.ended("connection closed during the WebSocket exchange")
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            self.session.ended("invalid frame: \(error)")
        }
    }
}
