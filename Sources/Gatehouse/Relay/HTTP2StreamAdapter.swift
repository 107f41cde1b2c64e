import NIOCore
import NIOHTTP2

/// Lets the relay treat an HTTP/2 stream carrying a WebSocket (RFC 8441) like a TCP connection: DATA frames become
/// bytes and bytes become DATA frames; END_STREAM from the client is a half-close, and shutting the output sends
/// END_STREAM. HTTP/2 flow control stays in charge: the stream is writable only while its window allows.
final class HTTP2StreamAdapter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var inputEnded = false
    private var outputEnded = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .data(let frame) = self.unwrapInboundIn(data) else { return }  // trailers, window updates: nothing to relay
        if case .byteBuffer(let bytes) = frame.data, bytes.readableBytes > 0 {
            context.fireChannelRead(self.wrapInboundOut(bytes))
        }
        if frame.endStream && !self.inputEnded {
            self.inputEnded = true
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = self.unwrapOutboundIn(data)
        context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .output:
            guard !self.outputEnded else {
                promise?.succeed(())
                return
            }
            self.outputEnded = true
            let end = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(context.channel.allocator.buffer(capacity: 0)), endStream: true))
            context.writeAndFlush(self.wrapOutboundOut(end), promise: promise)
        case .all, .input:
            context.close(mode: mode, promise: promise)
        }
    }
}
