import NIOCore
import NIOHTTP2

/// Watches the streams of one HTTP/2 connection: closes the connection when it has had no open stream for
/// `timeout` (from the start, or since its last stream closed), so idle or stalling HTTP/2 clients do not hold
/// sockets forever; and on drain sends GOAWAY so the client opens its next WebSockets elsewhere, closing the
/// connection as soon as its last stream ends.
///
/// NIOHTTP2 calls the delegate on the connection's event loop, where every method here runs.
final class HTTP2ConnectionWatcher: NIOHTTP2StreamDelegate, @unchecked Sendable {
    private let connection: Channel
    private let timeout: TimeAmount
    private var open = 0
    private var lastStreamID = HTTP2StreamID.rootStream
    private var timer: Scheduled<Void>?
    private var draining = false

    init(connection: Channel, timeout: TimeAmount) {
        self.connection = connection
        self.timeout = timeout
    }

    /// Starts the first countdown.
    func start() {
        self.connection.eventLoop.preconditionInEventLoop()
        self.arm()
    }

    func streamCreated(_ id: HTTP2StreamID, channel: Channel) {
        self.open += 1
        if id > self.lastStreamID { self.lastStreamID = id }
        self.timer?.cancel()
        self.timer = nil
    }

    func streamClosed(_ id: HTTP2StreamID, channel: Channel) {
        self.open = max(0, self.open - 1)
        guard self.open == 0 else { return }
        if self.draining {
            self.connection.close(promise: nil)
        } else {
            self.arm()
        }
    }

    /// Graceful drain: GOAWAY (NO_ERROR) naming the last stream the proxy took; streams already open finish their
    /// close handshakes, and the connection closes when none is left.
    func drain() {
        self.connection.eventLoop.preconditionInEventLoop()
        guard !self.draining else { return }
        self.draining = true
        let goAway = HTTP2Frame(
            streamID: .rootStream,
            payload: .goAway(lastStreamID: self.lastStreamID, errorCode: .noError, opaqueData: nil)
        )
        // Closing in the same tick would drop the GOAWAY still waiting for the coalesced flush.
        let written = self.connection.writeAndFlush(goAway)
        if self.open == 0 {
            let connection = self.connection
            written.whenComplete { _ in connection.close(promise: nil) }
        }
    }

    private func arm() {
        let connection = self.connection
        self.timer?.cancel()
        self.timer = connection.eventLoop.scheduleTask(in: self.timeout) { connection.close(promise: nil) }
    }
}
