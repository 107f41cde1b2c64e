import NIOCore
import NIOWebSocket

/// Ends a freshly upgraded connection politely: sends a masked close frame at once, waits for the server's
/// close, then closes TCP (so the client, not the server, holds TIME_WAIT). Used by the handshake loop.
final class CloseAfterUpgradeHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Bound on waiting for the server's close frame.
    static let timeout = TimeAmount.seconds(5)

    /// Completed when the connection is gone: true if the server answered the close, false otherwise.
    private let promise: EventLoopPromise<Bool>
    private var answered = false
    private var timer: Scheduled<Void>?

    init(promise: EventLoopPromise<Bool>) {
        self.promise = promise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        var code = context.channel.allocator.buffer(capacity: 2)
        code.writeInteger(UInt16(1000))
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: code)
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.timeout) {
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        if frame.opcode == .connectionClose {
            self.answered = true
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.finish()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func finish() {
        self.timer?.cancel()
        self.timer = nil
        self.promise.succeed(self.answered)
    }
}
