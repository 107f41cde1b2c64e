import Histogram
import NIOCore
import NIOWebSocket

/// What one echo connection measured.
struct EchoConnectionResult: Sendable {
    var latency = LatencyHistogram.make()
    /// Echoes received inside the measurement window (sent at or after its start, received before its end).
    var messages = 0
    /// Wrong echoes, protocol errors, stalls and unexpected closes.
    var errors = 0
    /// The connection ended before the run did.
    var lost = false
    /// What went wrong first, to explain a non-zero error count.
    var firstError: String?

    mutating func failed(_ description: String) {
        self.errors += 1
        if self.firstError == nil { self.firstError = description }
    }
}

/// Tells an ``EchoLoopHandler`` to start its closed loop: warm up until `measureFrom`, measure until `until`.
struct EchoStart: Sendable {
    var measureFrom: NIODeadline
    var until: NIODeadline
}

/// Closed-loop echo on one connection: send a masked binary message, wait for its echo, check it, repeat.
///
/// Each message carries a sequence number in its first 8 bytes so a reordered, duplicated or foreign echo is
/// counted as an error. After the window closes the handler performs the WebSocket close handshake.
final class EchoLoopHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum State {
        case waiting, running, closing, done
    }

    /// How long after the window a stalled echo or an unanswered close may hold the connection.
    static let grace = TimeAmount.seconds(3)

    private let payload: ByteBuffer
    private let promise: EventLoopPromise<EchoConnectionResult>
    private var result = EchoConnectionResult()
    private var state = State.waiting
    private var measureFrom = NIODeadline.distantFuture
    private var until = NIODeadline.distantFuture
    private var sequence: UInt64 = 0
    private var sentAt = NIODeadline.uptimeNanoseconds(0)
    private var receivedBytes = 0
    private var firstFrameOfMessage = true
    private var timer: Scheduled<Void>?

    init(payload: ByteBuffer, promise: EventLoopPromise<EchoConnectionResult>) {
        self.payload = payload
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let start = event as? EchoStart else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard self.state == .waiting else { return }
        self.state = .running
        self.measureFrom = start.measureFrom
        self.until = start.until
        // A message that never comes back must not hold the run open.
        self.arm(context: context, at: start.until + Self.grace)
        self.send(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text, .continuation:
            self.received(frame, context: context)
        case .ping:
            self.write(context: context, opcode: .pong, data: frame.unmaskedData)
        case .connectionClose:
            if self.state != .closing {
                // The server closed first: not something an echo run should see.
                self.result.failed("server sent a close frame first")
                self.write(context: context, opcode: .connectionClose, data: frame.unmaskedData)
            }
            self.state = .done
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.state == .running || self.state == .waiting {
            self.result.lost = true
            self.result.failed("connection closed during the run")
        }
        self.state = .done
        self.timer?.cancel()
        self.promise.succeed(self.result)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.promise.succeed(self.result)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Once the close handshake is done, how the server drops TCP (with or without TLS close_notify) is its
        // business, not an error of the run.
        if self.state != .done { self.result.failed("\(error)") }
        context.close(promise: nil)
    }

    private func received(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        guard self.state == .running else { return }
        let data = frame.unmaskedData
        if self.firstFrameOfMessage, self.payload.readableBytes >= 8 {
            if data.getInteger(at: data.readerIndex, as: UInt64.self) != self.sequence {
                self.result.failed("echo carried the wrong sequence number")
            }
        }
        self.firstFrameOfMessage = false
        self.receivedBytes += data.readableBytes
        guard frame.fin else { return }

        let now = NIODeadline.now()
        if self.receivedBytes != self.payload.readableBytes {
            self.result.failed("echo of \(self.receivedBytes) bytes for a \(self.payload.readableBytes)-byte message")
        } else if self.sentAt >= self.measureFrom && now <= self.until {
            self.result.messages += 1
            LatencyHistogram.record(&self.result.latency, nanoseconds: now.uptimeNanoseconds - self.sentAt.uptimeNanoseconds)
        }
        if now >= self.until {
            self.startClose(context: context)
        } else {
            self.send(context: context)
        }
    }

    private func send(context: ChannelHandlerContext) {
        self.sequence &+= 1
        self.receivedBytes = 0
        self.firstFrameOfMessage = true
        var message = self.payload
        if message.readableBytes >= 8 {
            message.setInteger(self.sequence, at: message.readerIndex)
        }
        self.sentAt = NIODeadline.now()
        self.write(context: context, opcode: .binary, data: message)
    }

    private func startClose(context: ChannelHandlerContext) {
        self.state = .closing
        var code = context.channel.allocator.buffer(capacity: 2)
        code.writeInteger(UInt16(1000))
        self.write(context: context, opcode: .connectionClose, data: code)
        self.arm(context: context, at: .now() + Self.grace)
    }

    private func write(context: ChannelHandlerContext, opcode: WebSocketOpcode, data: ByteBuffer) {
        // RFC 6455 §5.3: every client frame is masked with a fresh key.
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: data)
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
    }

    /// Closes the connection at `deadline` unless it finished by then; a forced close counts as an error.
    private func arm(context: ChannelHandlerContext, at deadline: NIODeadline) {
        self.timer?.cancel()
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            guard self.state != .done else { return }
            self.result.failed(self.state == .closing ? "close not answered in time" : "echo not received in time")
            self.state = .done
            context.close(promise: nil)
        }
    }
}
