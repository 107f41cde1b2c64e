import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: a small HTTP/1.1 server for operators (health, metrics, connections, reload, drain).
struct AdminServer: Sendable {
    let channel: Channel
    let bind: BindAddress
    /// The token it was started with (a reload that changes it restarts the endpoint).
    let tokenDigest: [UInt8]?

    static func start(bind: BindAddress, api: AdminAPI, tokenDigest: [UInt8]?, group: EventLoopGroup) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(api: api))
                }
            }
            .bind(host: bind.host, port: bind.port).get()
        return AdminServer(channel: channel, bind: bind, tokenDigest: tokenDigest)
    }

    func stop() async {
        try? await self.channel.close()
    }
}
