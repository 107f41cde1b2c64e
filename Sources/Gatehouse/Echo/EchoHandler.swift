import NIOCore
import NIOWebSocket

/// Echoes every data frame back as it came (same opcode, same fragmentation), answers pings, and completes the
/// close handshake with the code it was sent.
///
/// Reads stop while the channel cannot take more writes, so a client that does not read cannot make the echo
/// server buffer without bound.
final class EchoHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var closing = false
    private var readParked = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            guard !self.closing else { return }
            let reply = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(self.wrapOutboundOut(reply), promise: nil)
        case .ping:
            guard !self.closing else { return }
            context.write(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            var payload = frame.unmaskedData
            var reply = context.channel.allocator.buffer(capacity: 2)
            if let code = payload.readInteger(as: UInt16.self) {
                reply.writeInteger(code)
            }
            if !self.closing {
                self.closing = true
                let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)
                context.writeAndFlush(self.wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            } else {
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            self.readParked = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && self.readParked {
            self.readParked = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
