import NIOCore
import NIOPosix
import UnixSignals

extension EchoServer {
    /// Runs a standalone echo server until SIGTERM or SIGINT (`gatehouse echo`).
    public static func serve(
        address: BindAddress, threads: Int?, maxFrameSize: Int = defaultMaxFrameSize, announce: (SocketAddress?) -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads ?? System.coreCount)
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        do {
            let server = try await EchoServer.start(host: address.host, port: address.port, group: group, maxFrameSize: maxFrameSize)
            announce(server.localAddress)
            for await _ in signals { break }
            await server.stop()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}
