import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2

/// Closes an HTTP/2 connection that has no open stream for `timeout` (from the start, or since its last stream
/// closed), so idle or stalling HTTP/2 clients do not hold sockets forever.
final class HTTP2IdleConnectionTimer: NIOHTTP2StreamDelegate {
    private struct State {
        var open = 0
        var timer: Scheduled<Void>?
    }

    private let connection: Channel
    private let timeout: TimeAmount
    private let state = NIOLockedValueBox(State())

    init(connection: Channel, timeout: TimeAmount) {
        self.connection = connection
        self.timeout = timeout
    }

    /// Starts the first countdown.
    func start() {
        self.arm()
    }

    func streamCreated(_ id: HTTP2StreamID, channel: Channel) {
        self.state.withLockedValue { state in
            state.open += 1
            state.timer?.cancel()
            state.timer = nil
        }
    }

    func streamClosed(_ id: HTTP2StreamID, channel: Channel) {
        let idle = self.state.withLockedValue { state in
            state.open = max(0, state.open - 1)
            return state.open == 0
        }
        if idle { self.arm() }
    }

    private func arm() {
        let connection = self.connection
        let timer = connection.eventLoop.scheduleTask(in: self.timeout) { connection.close(promise: nil) }
        self.state.withLockedValue { state in
            state.timer?.cancel()
            state.timer = timer
        }
    }
}
