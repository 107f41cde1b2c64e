import Crypto
import Foundation
import NIOCore
import NIOWebSocket

/// Performs the client side of the RFC 6455 opening handshake on a fresh connection, then replaces itself with the
/// frame codec and the mode's own handler.
///
/// A hand-rolled request and response check keeps per-handshake client cost small and identical for every target;
/// the HTTP parser only has to find the status line and `Sec-WebSocket-Accept`.
final class UpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Why an upgrade failed.
    enum Failure: Error, CustomStringConvertible {
        case closedDuringHandshake
        case responseTooLarge
        case refused(String)
        case badAccept
        case timedOut

        var description: String {
            switch self {
            case .closedDuringHandshake: "connection closed before the 101 response"
            case .responseTooLarge: "response head larger than 16 KiB"
            case .refused(let status): "upgrade refused: \(status)"
            case .badAccept: "Sec-WebSocket-Accept does not match the key"
            case .timedOut: "no 101 response in time"
            }
        }
    }

    private static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    private static let maxHead = 16 << 10

    private let request: String
    private let expectedAccept: String
    private let maxFrameSize: Int
    private let install: @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    private let promise: EventLoopPromise<Void>
    private var received: ByteBuffer?
    private var requestSent = false
    private var finished = false
    private var timer: Scheduled<Void>?
    /// Bound on the whole handshake (TLS included), so a silent server cannot stall a loop.
    static let timeout = TimeAmount.seconds(10)

    init(
        target: BenchTarget,
        maxFrameSize: Int,
        promise: EventLoopPromise<Void>,
        install: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) {
        var generator = SystemRandomNumberGenerator()
        let keyBytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let key = Data(keyBytes).base64EncodedString()
        self.request =
            "GET \(target.path) HTTP/1.1\r\nHost: \(target.hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nOrigin: http://\(target.hostHeader)\r\n\r\n"
        self.expectedAccept = Data(Insecure.SHA1.hash(data: Array((key + Self.guid).utf8))).base64EncodedString()
        self.maxFrameSize = maxFrameSize
        self.promise = promise
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.timeout) {
            self.fail(context: context, Failure.timedOut)
        }
        if context.channel.isActive { self.sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        // With TLS the request waits in the TLS handler until its handshake is done.
        self.sendRequest(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        if self.received == nil {
            self.received = bytes
        } else {
            self.received?.writeBuffer(&bytes)
        }
        guard var buffer = self.received else { return }
        guard let headEnd = buffer.readableBytesView.firstRange(of: [13, 10, 13, 10]) else {
            if buffer.readableBytes > Self.maxHead { self.fail(context: context, Failure.responseTooLarge) }
            return
        }
        let headLength = headEnd.upperBound - buffer.readerIndex
        guard let head = buffer.readString(length: headLength) else { return }
        do {
            try self.check(head: head)
            // Install the frame codec behind this handler, hand it anything that arrived after the head, then leave.
            let sync = context.pipeline.syncOperations
            try sync.addHandler(WebSocketFrameEncoder())
            try sync.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: self.maxFrameSize)))
            try self.install(sync)
            self.finished = true
            self.timer?.cancel()
            self.received = nil
            self.promise.succeed()
            if buffer.readableBytes > 0 { context.fireChannelRead(self.wrapInboundOut(buffer)) }
            sync.removeHandler(context: context, promise: nil)
        } catch {
            self.fail(context: context, error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(context: context, Failure.closedDuringHandshake)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.fail(context: context, error)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Never leave the caller waiting, whatever removed us.
        self.timer?.cancel()
        if !self.finished {
            self.finished = true
            self.promise.fail(Failure.closedDuringHandshake)
        }
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard !self.requestSent else { return }
        self.requestSent = true
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(string: self.request)), promise: nil)
    }

    private func check(head: String) throws {
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: true)
        guard let status = lines.first else { throw Failure.refused("empty response") }
        let parts = status.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1] == "101" else {
            throw Failure.refused(String(status))
        }
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == "sec-websocket-accept" {
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                guard value == self.expectedAccept else { throw Failure.badAccept }
                return
            }
        }
        throw Failure.badAccept
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        guard !self.finished else { return }
        self.finished = true
        self.timer?.cancel()
        self.promise.fail(error)
        context.close(promise: nil)
    }
}
