import NIOCore

/// Turns the flushes issued during one event-loop tick into a single flush at its end: on an HTTP/2 connection each
/// relayed stream flushes on its own, and without this every message would cost its own TLS record and write.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny

    private var scheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !self.scheduled else { return }
        self.scheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.scheduled = false
            context.flush()
        }
    }
}
