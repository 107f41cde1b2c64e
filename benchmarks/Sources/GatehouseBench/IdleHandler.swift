import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// Keeps an upgraded connection open doing nothing but answering pings and closes, and counts connections the
/// server dropped while they were meant to be held.
final class IdleHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Counters shared by all idle connections of a run.
    final class Counters: Sendable {
        private let state = NIOLockedValueBox((dropped: 0, releasing: false))

        /// Connections that ended before the run released them.
        var dropped: Int { self.state.withLockedValue { $0.dropped } }

        /// From now on closes are ours, not drops.
        func release() {
            self.state.withLockedValue { $0.releasing = true }
        }

        fileprivate func ended() {
            self.state.withLockedValue { state in
                if !state.releasing { state.dropped += 1 }
            }
        }
    }

    private let counters: Counters

    init(counters: Counters) {
        self.counters = counters
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            self.write(context: context, opcode: .pong, data: frame.unmaskedData)
        case .connectionClose:
            self.write(context: context, opcode: .connectionClose, data: frame.unmaskedData)
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.counters.ended()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func write(context: ChannelHandlerContext, opcode: WebSocketOpcode, data: ByteBuffer) {
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: data)
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
    }
}
