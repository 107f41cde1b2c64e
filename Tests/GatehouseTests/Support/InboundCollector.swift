import NIOConcurrencyHelpers
import NIOCore

/// Collects every byte a test peer receives and lets the test wait, with a deadline, until what it expects is
/// there. Waiting is event-driven: a waiter is woken by new bytes, end of input, or its deadline.
final class InboundCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private struct State {
        var buffer = ByteBuffer()
        var inputClosed = false
        var inactive = false
        var error: Error?
        var generation = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let lock = NIOLockedValueBox(State())
    private let eventLoop: EventLoop

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.change { $0.buffer.writeBuffer(&bytes) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { self.change { $0.inputClosed = true } }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.change {
            $0.inputClosed = true
            $0.inactive = true
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.change { $0.error = error }
        context.close(promise: nil)
    }

    private func change(_ body: (inout State) -> Void) {
        let waiters = self.lock.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            body(&state)
            state.generation += 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Wakes waiters without new bytes (used as a plain signal).
    func poke() {
        self.change { _ in }
    }

    /// Bytes received and not consumed yet.
    var pendingBytes: Int { self.lock.withLockedValue { $0.buffer.readableBytes } }

    /// Whether the peer closed its side.
    var isInputClosed: Bool { self.lock.withLockedValue { $0.inputClosed } }

    /// Waits until `extract` returns a value, reading from the received bytes (it may consume them).
    /// `extract` gets the buffer and whether input has ended; it returns nil to keep waiting.
    func wait<T>(
        timeout: TimeAmount, what: String, _ extract: (inout ByteBuffer, _ inputClosed: Bool) throws -> T?
    ) async throws -> T {
        let deadline = NIODeadline.now() + timeout
        while true {
            let (value, generation): (T?, Int) = try self.lock.withLockedValue { state in
                (try extract(&state.buffer, state.inputClosed), state.generation)
            }
            if let value { return value }
            if NIODeadline.now() >= deadline { throw TestError.timeout(what) }
            await self.waitForChange(after: generation, deadline: deadline)
        }
    }

    private func waitForChange(after generation: Int, deadline: NIODeadline) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id: Int? = self.lock.withLockedValue { state in
                if state.generation != generation { return nil }
                let id = state.nextWaiter
                state.nextWaiter += 1
                state.waiters[id] = continuation
                return id
            }
            guard let id else {
                continuation.resume()
                return
            }
            self.eventLoop.scheduleTask(deadline: deadline) {
                let waiter = self.lock.withLockedValue { $0.waiters.removeValue(forKey: id) }
                waiter?.resume()
            }
        }
    }
}
