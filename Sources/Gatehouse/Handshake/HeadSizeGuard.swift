import NIOCore

/// Counts the bytes of a request head before the HTTP decoder sees them, and stops a head that grows past
/// `max_head_bytes` (the decoder's own limit is far higher and not configurable).
///
/// Bytes are passed on first, so a head that completes in the same read as a pipelined frame is not mistaken
/// for an oversized one.
final class HeadSizeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Fired down the pipeline when the limit is passed without a complete head.
    struct Overflow {}

    private let limit: Int
    private var seen = 0
    private var headComplete = false
    private var overflowed = false

    init(limit: Int) {
        self.limit = limit
    }

    /// Called by the handshake handler once the head is decoded.
    func markHeadComplete() {
        self.headComplete = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.overflowed else { return }
        self.seen &+= self.unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
        if !self.headComplete && self.seen > self.limit {
            self.overflowed = true
            context.fireUserInboundEventTriggered(Overflow())
        }
    }
}
