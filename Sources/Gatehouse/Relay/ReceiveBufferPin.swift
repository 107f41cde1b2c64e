import NIOCore

/// Holds a socket's first receive buffer until the channel closes, so that NIO's receive-buffer pool never reuses it.
///
/// NIO keeps the buffer of a channel's first read for the next reads, grows it in place whenever a read fills it and
/// never shrinks it: one 64 KiB message made a connection hold 64 KiB per socket for the rest of its life (91 KiB
/// per idle connection after one 64 KiB echo each; nginx 18, HAProxy 5: benchmarks/README.md, `idleburst`). While this
/// reference is held the pooled buffer is not uniquely owned, so every later read gets a buffer of its own, sized by
/// ``ReceiveBuffers`` and freed once its bytes are written; a quiet connection holds only the first, small buffer.
/// The price is one malloc and free per read, within noise in the benchmarks.
///
/// The first handler of every proxied socket (before TLS, so it sees the socket's own buffers); it leaves the
/// pipeline after the first read, so later reads do not pass through it.
final class ReceiveBufferPin: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let first = self.unwrapInboundIn(data)
        context.channel.closeFuture.whenComplete { _ in withExtendedLifetime(first) {} }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
