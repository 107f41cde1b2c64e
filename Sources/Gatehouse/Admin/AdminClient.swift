import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 client for the admin endpoint (`gatehouse reload`).
public enum AdminClient {
    /// Sends `method path` to the admin endpoint at `address`; returns the status and body.
    public static func request(
        _ method: HTTPMethod, _ path: String, address: BindAddress, token: String?, body: [UInt8] = [],
        contentType: String? = nil, timeout: TimeAmount = .seconds(30)
    ) async throws -> (status: UInt, body: String) {
        try await self.request(method, path, to: .tcp(address), token: token, body: body, contentType: contentType, timeout: timeout)
    }

    /// Sends `method path` to the admin endpoint `bind` (TCP or Unix socket); returns the status and body.
    /// Every request carries `Gatehouse-Admin: 1`, which state-changing requests need.
    public static func request(
        _ method: HTTPMethod, _ path: String, to bind: AdminBind, token: String?, body: [UInt8] = [],
        contentType: String? = nil, timeout: TimeAmount = .seconds(30)
    ) async throws -> (status: UInt, body: String) {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: (UInt, String).self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }
        let channel: Channel
        let host: String
        do {
            switch bind {
            case .tcp(let address):
                channel = try await bootstrap.connect(host: address.host, port: address.port).get()
                host = address.description
            case .unix(let socketPath):
                channel = try await bootstrap.connect(unixDomainSocketPath: socketPath).get()
                host = "localhost"
            }
        } catch {
            promise.fail(error)  // an unfulfilled promise traps in debug builds
            throw error
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: AdminRequestGuard.confirmationHeader, value: "1")
        headers.add(name: "Content-Length", value: String(body.count))
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        headers.add(name: "Connection", value: "close")
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)), promise: nil)
        if !body.isEmpty { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timer = channel.eventLoop.scheduleTask(in: timeout) { promise.fail(ChannelError.connectTimeout(timeout)) }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        let (status, body) = try await promise.futureResult.get()
        return (status, body)
    }

    private final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        private let promise: EventLoopPromise<(UInt, String)>
        private var status: UInt = 0
        private var body = ""

        init(promise: EventLoopPromise<(UInt, String)>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head): self.status = head.status.code
            case .body(let buffer): if self.body.utf8.count < 1 << 20 { self.body += String(buffer: buffer) }
            case .end: self.promise.succeed((self.status, self.body))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.promise.fail(ChannelError.eof)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            self.promise.fail(error)
            context.close(promise: nil)
        }
    }
}
