import NIOCore
import NIOHTTP2

/// Watches the streams of one HTTP/2 connection: closes the connection when it has had no open stream for
/// `timeout` (from the start, or since its last stream closed), so idle or stalling HTTP/2 clients do not hold
/// sockets forever; and on drain sends GOAWAY so the client opens its next WebSockets elsewhere, closing the
/// connection as soon as its last stream ends.
///
/// It also keeps the connection's stream budgets: streams over the advertised `max_concurrent_streams` and
/// handshakes over `max_handshakes_per_connection` are refused one by one (REFUSED_STREAM), and the connection
/// counts as pending (not yet carrying a WebSocket) until its first stream is relayed.
///
/// NIOHTTP2 calls the delegate on the connection's event loop, where every method here runs (stream channels
/// share their connection's loop).
final class HTTP2ConnectionWatcher: NIOHTTP2StreamDelegate, @unchecked Sendable {
    /// How long streams may go on after NIOHTTP2 ended the connection with a GOAWAY of its own (a peer breaking
    /// the protocol or flooding): then TCP is closed, and with it every stream and its backend.
    static let errorGrace: TimeAmount = .seconds(1)

    private let connection: Channel
    private let timeout: TimeAmount
    private let maxStreams: Int
    private let maxHandshakes: Int
    private let pending: PendingTicket?
    private var open = 0
    private var live = 0
    private var handshaking = 0
    private(set) var lastStreamID = HTTP2StreamID.rootStream
    private var timer: Scheduled<Void>?
    private var draining = false
    private var failed = false

    init(connection: Channel, timeout: TimeAmount, maxStreams: Int = .max, maxHandshakes: Int = .max, pending: PendingTicket? = nil) {
        self.connection = connection
        self.timeout = timeout
        self.maxStreams = maxStreams
        self.maxHandshakes = maxHandshakes
        self.pending = pending
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
        guard self.open == 0, !self.failed else { return }
        if self.draining {
            self.connection.close(promise: nil)
        } else {
            self.arm()
        }
    }

    /// A client stream is being set up: false when it exceeds the advertised concurrency (NIOHTTP2 itself is
    /// given a higher limit, so it does not turn the excess into a connection error).
    func streamInitialized(_ stream: Channel) -> Bool {
        self.connection.eventLoop.preconditionInEventLoop()
        self.live += 1
        stream.closeFuture.assumeIsolated().whenComplete { _ in self.live -= 1 }
        return self.live <= self.maxStreams
    }

    /// Takes one of the connection's handshake slots, or false when all are taken.
    func beginHandshake() -> Bool {
        self.connection.eventLoop.preconditionInEventLoop()
        guard self.handshaking < self.maxHandshakes else { return false }
        self.handshaking += 1
        return true
    }

    func endHandshake() {
        self.connection.eventLoop.preconditionInEventLoop()
        self.handshaking = max(0, self.handshaking - 1)
    }

    /// A stream now carries a WebSocket: the connection is no longer pending.
    func streamRelayed() {
        self.pending?.release()
    }

    /// NIOHTTP2 hit a connection error and sent its GOAWAY: it processes no more frames, so the streams still
    /// open could never end on their own. They get a short grace (their relays may be closing), then TCP and
    /// every stream with it are closed.
    func connectionFailed() {
        self.connection.eventLoop.preconditionInEventLoop()
        guard !self.failed else { return }
        self.failed = true
        self.timer?.cancel()
        let connection = self.connection
        // Let the GOAWAY's coalesced flush go out first.
        let delay = self.open == 0 ? TimeAmount.milliseconds(50) : Self.errorGrace
        self.timer = connection.eventLoop.scheduleTask(in: delay) { connection.close(promise: nil) }
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
        guard !self.failed else { return }
        let connection = self.connection
        self.timer?.cancel()
        self.timer = connection.eventLoop.scheduleTask(in: self.timeout) { connection.close(promise: nil) }
    }
}
