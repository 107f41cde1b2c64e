import NIOCore

/// The relay's foothold in one channel's pipeline: it hands every event to the ``RelaySession`` shared with the
/// other channel, and holds back `read()` while the other channel cannot take more bytes.
final class RelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let session: RelaySession
    private let side: RelaySide
    private let isStream: Bool

    /// `isStream`: the channel is an HTTP/2 stream rather than a TCP connection.
    init(session: RelaySession, side: RelaySide, isStream: Bool = false) {
        self.session = session
        self.side = side
        self.isStream = isStream
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.session.attach(self.side, context: context, isStream: self.isStream)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.session.received(self.unwrapInboundIn(data), from: self.side)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.session.readComplete(from: self.side)
    }

    func read(context: ChannelHandlerContext) {
        self.session.readRequested(by: self.side)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.session.writabilityChanged(self.side)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            self.session.inputClosed(self.side)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.session.inactive(self.side)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.session.failed(self.side, error: error)
    }
}
