import NIOCore
import NIOHTTP1

/// Sends the forwarded upgrade request on a new backend connection and reports the answer.
///
/// After a 101 it parks reads; the bytes that came with the 101 (the backend's first frames) travel with the
/// answer, so none is dropped and none is read twice when the relay takes over.
final class BackendHandshakeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let request: HTTPRequestHead
    private let expectedAccept: String
    private let server: BindAddress
    private let responseTimeout: TimeAmount
    private let promise: EventLoopPromise<BackendAnswer>
    private var parser = BackendResponseParser()
    private var answered = false
    private var readParked = false
    private var timeout: Scheduled<Void>?

    init(request: HTTPRequestHead, expectedAccept: String, server: BindAddress, responseTimeout: TimeAmount, promise: EventLoopPromise<BackendAnswer>) {
        self.request = request
        self.expectedAccept = expectedAccept
        self.server = server
        self.responseTimeout = responseTimeout
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        self.timeout = context.eventLoop.assumeIsolated().scheduleTask(in: self.responseTimeout) {
            self.fail(.responseTimeout(self.server.description), context: context)
        }
        let bytes = BackendRequestSerializer.serialize(self.request, allocator: context.channel.allocator)
        context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }  // bytes after a refusal: the connection is closing
        var bytes = self.unwrapInboundIn(data)
        self.handle(self.parser.feed(&bytes), context: context)
    }

    private func handle(_ progress: BackendResponseParser.Progress, context: ChannelHandlerContext) {
        switch progress {
        case .needMore:
            return
        case .switching(let head, let rest):
            self.readParked = true
            if let problem = self.problem(with101: head) {
                self.fail(.malformedAnswer(self.server.description, problem), context: context)
                return
            }
            self.answer(.upgraded(BackendUpgrade(channel: context.channel, head: head, server: self.server, leftover: rest)))
        case .refusal(let head, let body):
            self.answer(.refused(server: self.server, head: head, body: body))
            context.close(promise: nil)
        case .malformed(let why):
            self.fail(.malformedAnswer(self.server.description, why), context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if !self.readParked { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.answered {
            if self.parser.hasHead {
                self.handle(self.parser.finish(), context: context)
            } else {
                self.fail(.closedBeforeAnswer(self.server.description), context: context)
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.fail(self.parser.hasHead ? .malformedAnswer(self.server.description, "\(error)") : .closedBeforeAnswer(self.server.description), context: context)
    }

    private func problem(with101 head: HTTPResponseHead) -> String? {
        guard head.version == .http1_1 else { return "101 must be HTTP/1.1" }
        let upgrade = head.headers["upgrade"].flatMap { HTTPToken.list($0) }
        guard upgrade.contains(where: { $0.lowercased() == "websocket" }) else { return "101 without Upgrade: websocket" }
        let connection = head.headers["connection"].flatMap { HTTPToken.list($0) }
        guard connection.contains(where: { $0.lowercased() == "upgrade" }) else { return "101 without Connection: Upgrade" }
        let accepts = head.headers["sec-websocket-accept"]
        guard accepts.count == 1, accepts[0].trimmingSpaces() == self.expectedAccept else {
            return "wrong Sec-WebSocket-Accept"
        }
        let offeredProtocols = Set(self.request.headers["sec-websocket-protocol"].flatMap { HTTPToken.list($0) })
        let selected = head.headers["sec-websocket-protocol"].flatMap { HTTPToken.list($0) }
        guard selected.count <= 1, selected.allSatisfy({ offeredProtocols.contains($0) }) else {
            return "selected a subprotocol the client did not offer"
        }
        let offeredExtensions = Set(self.request.headers["sec-websocket-extensions"].flatMap { HTTPToken.list($0) }.map(Self.extensionName))
        for accepted in head.headers["sec-websocket-extensions"].flatMap({ HTTPToken.list($0) }) {
            guard offeredExtensions.contains(Self.extensionName(accepted)) else {
                return "accepted an extension the client did not offer"
            }
        }
        return nil
    }

    private static func extensionName(_ element: Substring) -> Substring {
        (element.split(separator: ";", maxSplits: 1).first ?? element).trimmingSpaces()
    }

    private func answer(_ answer: BackendAnswer) {
        self.answered = true
        self.timeout?.cancel()
        self.promise.succeed(answer)
    }

    private func fail(_ failure: BackendFailure, context: ChannelHandlerContext) {
        guard !self.answered else { return }
        self.answered = true
        self.timeout?.cancel()
        self.promise.fail(failure)
        context.close(promise: nil)
    }
}
