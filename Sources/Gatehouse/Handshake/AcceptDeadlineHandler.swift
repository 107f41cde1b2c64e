import NIOCore
import NIOSSL

/// Bounds the time between accepting a TLS connection and knowing its protocol: a client that stalls the TLS
/// handshake (a slowloris below HTTP) is cut off after `handshake_timeout`. Counts failed TLS handshakes.
final class AcceptDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let deadline: NIODeadline
    private let onTLSFailure: () -> Void
    private var timer: Scheduled<Void>?

    init(deadline: NIODeadline, onTLSFailure: @escaping () -> Void) {
        self.deadline = deadline
        self.onTLSFailure = onTLSFailure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: self.deadline) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOSSLError || error is BoringSSLError { self.onTLSFailure() }
        context.close(promise: nil)
    }
}
