import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The project's WebSocket echo server: the `builtin: echo` backend and the `gatehouse echo` command.
public final class EchoServer: Sendable {
    /// Largest frame accepted (the echo server buffers whole frames).
    public static let defaultMaxFrameSize = 1 << 27

    private let channel: Channel

    /// The address it listens on.
    public var localAddress: SocketAddress? { self.channel.localAddress }

    private init(channel: Channel) {
        self.channel = channel
    }

    /// Starts listening on `host:port` (port 0 picks an ephemeral one).
    public static func start(
        host: String, port: Int, group: EventLoopGroup, maxFrameSize: Int = defaultMaxFrameSize
    ) async throws -> EchoServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: maxFrameSize,
                    automaticErrorHandling: true,
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(EchoHandler())
                        }
                    }
                )
                return channel.eventLoop.makeCompletedFuture {
                    let notUpgrade = EchoPlainHTTPHandler()
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                            let sync = context.pipeline.syncOperations
                            if let handler = try? sync.handler(type: EchoPlainHTTPHandler.self) {
                                _ = sync.removeHandler(handler)
                            }
                        })
                    )
                    try channel.pipeline.syncOperations.addHandler(notUpgrade)
                }
            }
            .bind(host: host, port: port).get()
        return EchoServer(channel: channel)
    }

    /// Stops accepting; open echo connections finish on their own.
    public func stop() async {
        try? await self.channel.close()
    }
}

/// Answers plain HTTP requests to the echo server with 426.
final class EchoPlainHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = self.unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "25")
        headers.add(name: "Sec-WebSocket-Version", value: "13")
        headers.add(name: "Connection", value: "close")
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .upgradeRequired, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: "WebSocket echo endpoint\r\n")))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
