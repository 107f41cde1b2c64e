import NIOCore

/// The relay's foothold in one channel's pipeline: it hands every event to the ``RelayConnection`` that owns both
/// channels, which holds back `read()` while the other channel cannot take more bytes.
final class RelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connection: RelayConnection
    private let side: RelaySide
    private let isStream: Bool

    /// `isStream`: the channel is an HTTP/2 stream rather than a TCP connection.
    init(connection: RelayConnection, side: RelaySide, isStream: Bool = false) {
        self.connection = connection
        self.side = side
        self.isStream = isStream
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.connection.attach(self.side, context: context, isStream: self.isStream)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.connection.received(self.unwrapInboundIn(data), from: self.side)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.connection.readComplete(from: self.side)
    }

    func read(context: ChannelHandlerContext) {
        self.connection.readRequested(by: self.side)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.connection.writabilityChanged(self.side)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            self.connection.inputClosed(self.side)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.connection.inactive(self.side)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.connection.failed(self.side)
    }
}
