import NIOCore

/// How big the first receive buffer of a proxied socket is.
///
/// NIO keeps each channel's receive buffer for its next read and never shrinks it, so the first read's buffer is
/// what an idle connection holds per socket until traffic asks for more (it then doubles as reads fill it, up to
/// 64 KiB). NIO's default first buffer is 2 KiB; starting small holds 3.4 KiB less per idle relayed WebSocket
/// (`benchmarks/README.md`) for one more read when a request or ClientHello is larger.
enum ReceiveBuffers {
    /// Client sockets: most upgrade requests and TLS ClientHellos fit in 512 bytes.
    static let client = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536)
    /// Backend sockets: the first read is the backend's 101, usually under 256 bytes.
    static let backend = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65_536)
}
