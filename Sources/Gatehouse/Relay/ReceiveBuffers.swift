import NIOCore

/// How big the receive buffers of a proxied socket are.
///
/// NIO keeps each channel's first receive buffer for its next reads; ``ReceiveBufferPin`` keeps it from being reused
/// (NIO would grow it in place and never shrink it), so that first buffer is what an idle connection holds per
/// socket, and every later read gets a buffer of its own of the size chosen here: at least 512 bytes (small enough
/// for malloc's per-thread cache), doubling while reads fill it up to 64 KiB, halving after two reads under half.
/// NIO's default first buffer is 2 KiB; 512 bytes holds 3 KiB less per idle relayed WebSocket
/// (`benchmarks/README.md`) for one more read when a request is larger.
enum ReceiveBuffers {
    /// Client sockets of plain listeners and backend sockets: most upgrade requests, and a backend's 101, fit in the
    /// first 512 bytes.
    static let plain = AdaptiveRecvByteBufferAllocator(minimum: 512, initial: 512, maximum: 65_536)
    /// Client sockets of TLS listeners: a ClientHello is up to ~1.8 KiB (a browser's post-quantum key share, a
    /// resumption ticket); reading it in pieces cost ~10 % more CPU per resumed handshake, and a TLS connection holds
    /// ~27 KiB anyway.
    static let tlsClient = AdaptiveRecvByteBufferAllocator(minimum: 512, initial: 2_048, maximum: 65_536)
}
