import NIOCore
import NIOHTTP1

/// Reads admin requests (head and a bounded body) and answers them through ``AdminAPI``, off the event loop.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maxBody = 64 << 10

    private let api: AdminAPI
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    private var body: [UInt8] = []

    init(api: AdminAPI) {
        self.api = api
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.bodyBytes = 0
            self.body = []
        case .body(let body):
            self.bodyBytes += body.readableBytes
            // Kept only up to the limit: a larger body is answered 413 at its end, never buffered whole.
            if self.bodyBytes <= Self.maxBody { self.body += body.readableBytesView }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            if self.bodyBytes > Self.maxBody {
                self.write(.text(.payloadTooLarge, "request body too large"), keepAlive: false, context: context)
                return
            }
            let api = self.api
            let request = AdminRequest(head: head, body: self.body)
            self.body = []
            let keepAlive = head.isKeepAlive
            context.eventLoop.makeFutureWithTask { await api.handle(request) }.assumeIsolated().whenSuccess { response in
                self.write(response, keepAlive: keepAlive, context: context)
            }
        }
    }

    private func write(_ response: AdminResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        let done = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
