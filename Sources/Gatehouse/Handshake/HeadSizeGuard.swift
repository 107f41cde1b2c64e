import NIOCore

/// Counts the bytes of a request head before the HTTP decoder sees them, and stops a head that grows past
/// `max_head_bytes` (the decoder's own limit is far higher and not configurable).
///
/// Bytes are passed on first, so a head that completes in the same read as a pipelined frame is not mistaken
/// for an oversized one.
///
/// Once the head is in, the connection keeps reading while the handshake runs (so a client that leaves is
/// noticed at once); the bytes that arrive meanwhile wait in the decoder. They are bounded by the same limit:
/// past it, the handshake handler stops reading until the relay takes over.
final class HeadSizeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Fired down the pipeline when the limit is passed without a complete head.
    struct Overflow {}

    /// Fired down the pipeline when more than the limit arrived after the head, before the handshake ended.
    struct EarlyInputLimit {}

    private let limit: Int
    private var seen = 0
    private var headComplete = false
    private var overflowed = false
    private var early = 0
    private var earlyLimitReached = false

    init(limit: Int) {
        self.limit = limit
    }

    /// Called by the handshake handler once the head is decoded.
    func markHeadComplete() {
        self.headComplete = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.overflowed else { return }
        let bytes = self.unwrapInboundIn(data).readableBytes
        self.seen &+= bytes
        let afterHead = self.headComplete
        context.fireChannelRead(data)
        if afterHead && !self.earlyLimitReached {
            self.early &+= bytes
            if self.early > self.limit {
                self.earlyLimitReached = true
                context.fireUserInboundEventTriggered(EarlyInputLimit())
            }
        }
        if !self.headComplete && self.seen > self.limit {
            self.overflowed = true
            context.fireUserInboundEventTriggered(Overflow())
        }
    }
}
