import NIOCore
import NIOHTTP1

/// Sends the forwarded upgrade request on a new backend connection and reports the answer.
///
/// After the answer head it parks reads, so the bytes that follow a 101 stay in the decoder until the relay is
/// installed and none is read twice or dropped.
final class BackendHandshakeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// Largest body of a refusing answer relayed to the client.
    static let maxRefusalBody = 64 << 10

    private enum State {
        case awaitingHead
        case awaitingUpgradeEnd(HTTPResponseHead)
        case collectingBody(HTTPResponseHead, ByteBuffer)
        case answered
    }

    private let request: HTTPRequestHead
    private let expectedAccept: String
    private let server: BindAddress
    private let responseTimeout: TimeAmount
    private let promise: EventLoopPromise<BackendAnswer>
    private var state = State.awaitingHead
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
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timeout = context.eventLoop.scheduleTask(in: self.responseTimeout) {
            let (handler, context) = loopBound.value
            handler.fail(.responseTimeout(handler.server.description), context: context)
        }
        context.write(self.wrapOutboundOut(.head(self.request)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.state, self.unwrapInboundIn(data)) {
        case (.awaitingHead, .head(let head)):
            if head.status == .switchingProtocols {
                self.readParked = true
                if let problem = self.problem(with101: head) {
                    self.fail(.malformedAnswer(self.server.description, problem), context: context)
                } else {
                    self.state = .awaitingUpgradeEnd(head)
                }
            } else {
                self.state = .collectingBody(head, context.channel.allocator.buffer(capacity: 0))
            }
        case (.collectingBody(let head, var body), .body(var part)):
            guard body.readableBytes + part.readableBytes <= Self.maxRefusalBody else {
                self.fail(.malformedAnswer(self.server.description, "refusal body larger than 64 KiB"), context: context)
                return
            }
            self.state = .answered
            body.writeBuffer(&part)
            self.state = .collectingBody(head, body)
        case (.collectingBody(let head, let body), .end):
            self.answer(.refused(server: self.server, head: head, body: body))
            context.close(promise: nil)
        case (.awaitingUpgradeEnd(let head), .end):
            // Answer from outside the decoder's call stack: the relay removes the decoder when it takes over.
            let upgrade = BackendUpgrade(channel: context.channel, head: head, server: self.server)
            self.state = .answered
            self.timeout?.cancel()
            let promise = self.promise
            context.eventLoop.assumeIsolated().execute { promise.succeed(.upgraded(upgrade)) }
        case (.answered, _):
            break  // bytes after a refusal are ignored; the connection is closing
        default:
            self.fail(.malformedAnswer(self.server.description, "unexpected message part"), context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if !self.readParked { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(.closedBeforeAnswer(self.server.description), context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .awaitingHead = self.state, error is HTTPParserError {
            self.fail(.malformedAnswer(self.server.description, "not an HTTP/1.1 response"), context: context)
        } else if case .awaitingHead = self.state {
            self.fail(.closedBeforeAnswer(self.server.description), context: context)
        } else {
            self.fail(.malformedAnswer(self.server.description, "\(error)"), context: context)
        }
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
        self.state = .answered
        self.timeout?.cancel()
        self.promise.succeed(answer)
    }

    private func fail(_ failure: BackendFailure, context: ChannelHandlerContext) {
        if case .answered = self.state { return }
        self.state = .answered
        self.timeout?.cancel()
        self.promise.fail(failure)
        context.close(promise: nil)
    }
}
