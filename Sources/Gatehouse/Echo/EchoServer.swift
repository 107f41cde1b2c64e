import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The project's WebSocket echo server: the `builtin: echo` backend and the `gatehouse echo` command.
public final class EchoServer: Sendable {
    /// Largest frame accepted by default (the echo server buffers whole frames, so this bounds its memory per
    /// connection).
    public static let defaultMaxFrameSize = BackendConfig.defaultEchoMaxFrameBytes

    private let channel: Channel
    private let maxFrameSize: NIOLockedValueBox<Int>

    /// The address it listens on.
    public var localAddress: SocketAddress? { self.channel.localAddress }

    private init(channel: Channel, maxFrameSize: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.maxFrameSize = maxFrameSize
    }

    /// The frame limit for the builtin echo backends of `config`: the largest `max_frame_bytes` among them (one
    /// echo server serves them all), or the default.
    public static func maxFrameSize(for config: ProxyConfig) -> Int {
        config.backends.filter { $0.kind == .builtinEcho }.map(\.echoMaxFrameBytes).max() ?? Self.defaultMaxFrameSize
    }

    /// Takes `config`'s frame limit (``maxFrameSize(for:)``) for connections accepted from now on.
    public func apply(_ config: ProxyConfig) {
        self.maxFrameSize.withLockedValue { $0 = Self.maxFrameSize(for: config) }
    }

    /// Starts listening on `host:port` (port 0 picks an ephemeral one).
    public static func start(
        host: String, port: Int, group: EventLoopGroup, maxFrameSize: Int = defaultMaxFrameSize
    ) async throws -> EchoServer {
        let limit = NIOLockedValueBox(maxFrameSize)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: limit.withLockedValue { $0 },
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
        return EchoServer(channel: channel, maxFrameSize: limit)
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
