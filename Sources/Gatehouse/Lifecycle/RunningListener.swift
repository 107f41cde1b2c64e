import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A bound listener socket and the configuration it was bound with.
struct RunningListener: Sendable {
    let config: ListenerConfig
    let channel: Channel

    /// Binds `config` and sets up each accepted connection for the HTTP/1.1 handshake (behind TLS if configured).
    static func bind(_ config: ListenerConfig, engine: ProxyEngine, group: EventLoopGroup) async throws -> RunningListener {
        let info = ListenerInfo(name: config.name, isTLS: config.tls != nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let state = engine.loop(channel.eventLoop).state
                    let limits = state.config.defaultLimits
                    let sync = channel.pipeline.syncOperations
                    if info.isTLS {
                        guard let tls = state.listenerTLS[info.name] else {
                            throw ChannelError.inappropriateOperationForState
                        }
                        try sync.addHandler(NIOSSLServerHandler(context: tls.context))
                    }
                    let headGuard = HeadSizeGuard(limit: limits.maxHeadBytes)
                    try sync.addHandler(headGuard)
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
                    try sync.addHandler(HTTPResponseEncoder())
                    try sync.addHandler(
                        HTTP1HandshakeHandler(engine: engine, listener: info, headGuard: headGuard, limits: limits)
                    )
                }
            }
            .bind(host: config.bind.host, port: config.bind.port).get()
        return RunningListener(config: config, channel: channel)
    }
}
