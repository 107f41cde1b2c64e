import NIOCore

/// Relays one WebSocket between a client channel and a backend channel on the same event loop, reading frame
/// headers in both directions and passing payload bytes on without copying them.
///
/// Backpressure: when the channel being written to passes its high watermark (`buffer_bytes`), reads on the side
/// feeding it are held back until it drains below the low watermark, so the proxy never holds more than
/// `buffer_bytes` plus one read per direction.
///
/// Closing: close frames are relayed with their code and reason, and TCP is closed once both sides have sent and
/// received one (or `close_timeout` passed). The proxy sends its own close frames (limits, violations, timeouts,
/// drain) only on a frame boundary of the stream it writes them into.
final class RelaySession {
    /// One side's state. A class, so the per-read path updates it in place instead of copying it (and retaining
    /// its context) on every access.
    final class Peer {
        var context: ChannelHandlerContext?
        /// A socket channel (not an HTTP/2 stream), whose outbound backlog can be read.
        var isSocket = true
        var readParked = false
        /// The channel's writability, kept from writability events (asking the channel costs retains per read).
        var writable = true
        var active = true
        var inputClosed = false
        var outputClosed = false
        var unflushed = false
        /// A close frame was written toward this peer.
        var sentClose = false
        /// This peer sent a close frame (or vanished without one).
        var receivedClose = false
        /// A close frame the proxy wants to send to this peer once the stream toward it is on a frame boundary.
        var pendingClose: ByteBuffer?
    }

    /// How the connection ended, for the access log.
    struct Ending {
        var code: UInt16?
        var by: String
        var reason: String
    }

    /// What the access log and admin API know of this connection.
    let record: ConnectionRecord
    let settings: RelaySettings
    /// The route's metrics, fed per read with what changed.
    let metrics: RouteMetrics
    var reported = ReportedTraffic()
    /// Traffic not yet added to the route's counters (published when metrics are scraped, and at the end).
    var trafficDirty = false
    private let onTraffic: (RelaySession) -> Void
    private let onEnd: (RelaySession) -> Void
    let client = Peer()
    let backend = Peer()
    /// Frames read from the client, toward the backend.
    var fromClient: FrameScanner
    /// Frames read from the backend, toward the client.
    var fromBackend: FrameScanner
    var ending: Ending?
    /// Set once the HTTP handlers are out of both pipelines; until then the proxy writes nothing of its own.
    private(set) var started = false
    private var ended = false
    var closeTimer: Scheduled<Void>?
    var tickTimer: Scheduled<Void>?
    var keepalive = KeepaliveState()

    init(
        record: ConnectionRecord, settings: RelaySettings, metrics: RouteMetrics,
        onTraffic: @escaping (RelaySession) -> Void, onEnd: @escaping (RelaySession) -> Void
    ) {
        self.record = record
        self.settings = settings
        self.metrics = metrics
        self.onTraffic = onTraffic
        self.onEnd = onEnd
        self.fromClient = FrameScanner(rules: settings.clientRules)
        self.fromBackend = FrameScanner(rules: settings.backendRules)
    }

    subscript(side: RelaySide) -> Peer {
        side == .client ? self.client : self.backend
    }

    /// Whether reads from `side` are held back by backpressure.
    func isReadPaused(_ side: RelaySide) -> Bool {
        self[side].readParked
    }

    func attach(_ side: RelaySide, context: ChannelHandlerContext, isStream: Bool) {
        self[side].context = context
        self[side].isSocket = !isStream
        self[side].writable = context.channel.isWritable
    }

    /// Starts relaying once both handlers are in place: flushes what the decoders handed over when they were
    /// removed (those reads have no read-complete of their own), starts the timers, then reads on both sides.
    func start() {
        self.started = true
        self.readComplete(from: .client)
        self.readComplete(from: .backend)
        self.sendPendingClose(to: .client)
        self.sendPendingClose(to: .backend)
        self.finishIfDone()
        self.startTimers()
        self.client.context?.read()
        self.backend.context?.read()
    }

    // MARK: Reading

    func received(_ buffer: ByteBuffer, from side: RelaySide) {
        if side == .client {
            self.record.bytesFromClient &+= buffer.readableBytes
        } else {
            self.record.bytesFromBackend &+= buffer.readableBytes
        }
        // Nothing a peer sends after its close frame is relayed.
        guard !self[side].receivedClose else { return }
        var buffer = buffer
        while true {
            let event = side == .client ? self.fromClient.next(&buffer) : self.fromBackend.next(&buffer)
            switch event {
            case .forward(let run):
                self.forward(run, to: side.peer)
            case .control(let opcode, let frame, let payload):
                self.control(opcode: opcode, frame: frame, payload: payload, from: side)
                if self[side].receivedClose { return }
            case .violation(let code, let reason):
                self.violation(by: side, code: code, reason: reason)
                return
            case .needMore:
                self.sendPendingClose(to: side.peer)
                return
            }
        }
    }

    /// Writes bytes toward `target` unless a close was already sent there.
    func forward(_ bytes: ByteBuffer, to target: RelaySide) {
        guard !self[target].sentClose, !self[target].outputClosed, let context = self[target].context else { return }
        context.write(NIOAny(bytes), promise: nil)
        self[target].unflushed = true
    }

    func readComplete(from side: RelaySide) {
        self.flush(side.peer)
        if !self.trafficDirty {
            self.trafficDirty = true
            self.onTraffic(self)
        }
    }

    func flush(_ side: RelaySide) {
        guard self[side].unflushed, let context = self[side].context else { return }
        self[side].unflushed = false
        context.flush()
        // The backlog is only worth reading when it is over the high watermark: below it, it is bounded anyway.
        if self[side].isSocket && !self[side].writable { self.sampleBacklog(context) }
    }

    // MARK: Backpressure

    func readRequested(by side: RelaySide) {
        guard let context = self[side].context else { return }
        if !self[side.peer].writable, self[side.peer].active {
            self[side].readParked = true
        } else {
            context.read()
        }
    }

    func writabilityChanged(_ side: RelaySide) {
        guard let context = self[side].context else { return }
        self[side].writable = context.channel.isWritable
        guard self[side].writable else { return }
        let feeder = side.peer
        if self[feeder].readParked, let feederContext = self[feeder].context {
            self[feeder].readParked = false
            feederContext.read()
        }
    }

    private func sampleBacklog(_ context: ChannelHandlerContext) {
        guard let queued = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) else { return }
        if queued > self.record.peakBufferedBytes { self.record.peakBufferedBytes = queued }
    }

    // MARK: Channel events

    /// The side sent FIN.
    func inputClosed(_ side: RelaySide) {
        self[side].inputClosed = true
        if !self[side].receivedClose { self.vanished(side) }
        self.finishIfDone()
    }

    func inactive(_ side: RelaySide) {
        self[side].active = false
        self[side].outputClosed = true
        self[side].inputClosed = true
        if !self[side].receivedClose { self.vanished(side) }
        if !self.client.active && !self.backend.active {
            self.end()
        } else {
            self.finishIfDone()
        }
    }

    func failed(_ side: RelaySide, error: Error) {
        self[side].context?.close(promise: nil)
    }

    /// Closes both sides at once, dropping anything queued (process shutdown, close timeout).
    func abort() {
        self.client.context?.close(promise: nil)
        self.backend.context?.close(promise: nil)
    }

    /// Closes `side` after flushing what is queued toward it. An HTTP/2 stream only gets END_STREAM: it closes
    /// once the client ends its side too (resetting it would be abrupt); the close timer bounds the wait.
    func closeAfterFlush(_ side: RelaySide) {
        guard self[side].active, let context = self[side].context else { return }
        if !self[side].isSocket {
            if !self[side].outputClosed {
                self[side].outputClosed = true
                self[side].unflushed = false
                context.close(mode: .output, promise: nil)
            }
            return
        }
        if !self[side].outputClosed {
            self[side].outputClosed = true
            self[side].unflushed = false
            context.flush()
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            context.close(mode: .output, promise: promise)
        } else {
            context.close(promise: nil)
        }
    }

    private func end() {
        guard !self.ended else { return }
        self.ended = true
        self.closeTimer?.cancel()
        self.tickTimer?.cancel()
        self.onEnd(self)
    }
}
