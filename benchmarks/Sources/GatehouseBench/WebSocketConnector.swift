import NIOCore
import NIOPosix
import NIOSSL

/// Opens upgraded WebSocket connections to one target: TCP, optional TLS, the opening handshake, then the mode's
/// handler on top of the frame codec.
struct WebSocketConnector: Sendable {
    let target: BenchTarget
    let tlsContext: NIOSSLContext?
    /// Largest frame the client decoder accepts (the echo of the biggest message must fit).
    let maxFrameSize: Int
    /// Bound on TCP connect; the rest of the handshake is bounded by ``UpgradeHandler/timeout``.
    var connectTimeout: TimeAmount = .seconds(10)
    private let address: SocketAddress

    init(target: BenchTarget, tlsContext: NIOSSLContext?, maxFrameSize: Int) throws {
        self.target = target
        self.tlsContext = tlsContext
        self.maxFrameSize = maxFrameSize
        self.address = try target.loopbackSocketAddress()
    }

    /// Connects on `eventLoop`; the future succeeds once the server's 101 has been checked and `install` has added
    /// the mode's handlers. A failed future means the connection is already closed (or was never opened).
    func connect(
        on eventLoop: EventLoop,
        install: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) -> EventLoopFuture<Channel> {
        let upgraded = eventLoop.makePromise(of: Void.self)
        let target = self.target
        let tlsContext = self.tlsContext
        let maxFrameSize = self.maxFrameSize
        let connected = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(self.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: target.serverName))
                    }
                    try sync.addHandler(
                        UpgradeHandler(target: target, maxFrameSize: maxFrameSize, promise: upgraded, install: install)
                    )
                }
            }
            .connect(to: self.address)
        // A connect that fails before the initializer ran would otherwise leave `upgraded` pending forever;
        // failing an already completed promise is a no-op.
        connected.whenFailure { upgraded.fail($0) }
        return connected.flatMap { channel in
            upgraded.futureResult.map { channel }
        }
    }
}
