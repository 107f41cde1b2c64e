import NIOCore
import NIOPosix

/// A bound listener socket. What its accepted connections get (name, TLS context, limits) is read from the
/// event loop's current state at accept time, so a reload changes it without touching the socket.
struct RunningListener: Sendable {
    let key: String
    let channel: Channel

    var address: String {
        self.channel.localAddress.map(ConnectionRecord.describe) ?? "?"
    }

    /// Binds `address` and sets up each accepted connection for the HTTP/1.1 handshake (behind TLS if the
    /// listener has it).
    static func bind(key: String, address: BindAddress, engine: ProxyEngine, group: EventLoopGroup) async throws -> RunningListener {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.recvAllocator, value: ReceiveBuffers.plain)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try ConnectionPipeline.configure(channel, listenerKey: key, engine: engine)
                }
            }
            .bind(host: address.host, port: address.port).get()
        return RunningListener(key: key, channel: channel)
    }
}
