import GatehouseCluster
import NIOCore

/// Every decision of one relayed WebSocket, with no I/O and no clock: events go in (bytes read, read complete, EOF,
/// channel gone, writability, timer ticks with the time passed in, closes asked for) and actions come out for
/// ``RelayConnection`` to carry out on the two channels.
///
/// The per-read path returns small values the owner switches on (``ReadStep``, ``Flush``, a `Bool`), never a list
/// or a closure. Everything else (close frames, pings, shutdowns, timers, reads at start, the end) is left in the
/// state and handed out one ``Action`` at a time by ``nextAction()``, which the owner calls until it returns nil
/// whenever ``needsSettling`` is set.
///
/// Closing: close frames are relayed with their code and reason, and both outputs are shut once each side has
/// sent and received a close (or is gone); `close_timeout` bounds the whole handshake. The proxy writes a frame of
/// its own (close, ping) only on a frame boundary of the stream it goes into.
///
/// Pushes (messages of the proxy's own for the client) wait in a bounded ``PushQueue`` and are written only between
/// the backend's messages: never after a non-FIN data frame until its final continuation, never inside a frame whose
/// payload is still arriving (the backend's control frames in between do not matter).
struct RelayStateMachine {
    /// What may still be written toward a side.
    enum OutputState {
        /// Frames are forwarded.
        case open
        /// A close frame waits for the stream toward the side to reach a frame boundary.
        case closeQueued(ByteBuffer)
        /// A close frame was written (or the side vanished and is owed nothing more): nothing else is forwarded.
        case closeSent
        /// The output is shut (TCP half-close, END_STREAM) or the channel is gone.
        case shut
    }

    /// What is still read from a side.
    enum InputState {
        /// Frames are scanned and forwarded.
        case open
        /// The side sent a close frame or broke a rule: nothing more from it is relayed.
        case closeReceived
        /// The side ended its input (FIN, END_STREAM, channel gone).
        case eof
    }

    /// One side's state.
    struct SideState {
        var output = OutputState.open
        var input = InputState.open
        /// The channel is still active.
        var active = true
        /// An HTTP/2 stream rather than a socket: its output ends with END_STREAM and its backlog cannot be read.
        var isStream = false
        /// Cached from writability events (asking the channel costs retains per read).
        var writable = true
        /// A read was held back because the other side cannot take more bytes.
        var readPaused = false
        /// Bytes were written toward this side since its last flush.
        var unflushed = false
        /// A flush is owed outside of a read-complete (after a frame of the proxy's own).
        var flushDue = false
        /// A read is owed (at start).
        var readDue = false
        /// A full close is owed: the side's output is shut and its input just ended.
        var closeDue = false
        /// The proxy has nothing more to do with this side: it sent and received a close, or is gone.
        var isDone: Bool {
            guard self.active else { return true }
            switch (self.input, self.output) {
            case (.open, _): return false
            case (.eof, _), (_, .closeSent), (_, .shut): return true
            case (.closeReceived, .open), (.closeReceived, .closeQueued): return false
            }
        }
        var hasQueuedClose: Bool {
            guard case .closeQueued = self.output else { return false }
            return true
        }
        mutating func requestFullCloseIfShut() {
            guard self.active, !self.isStream, case .shut = self.output else { return }
            self.closeDue = true
        }
        /// Bytes may still go toward this side (a queued close waits behind them for the frame boundary).
        var canForward: Bool {
            guard self.active else { return false }
            switch self.output {
            case .open, .closeQueued: return true
            case .closeSent, .shut: return false
            }
        }
    }

    /// Where the connection is in its life.
    enum Phase: Equatable {
        /// The HTTP handlers are still leaving the pipelines: bytes are relayed, the proxy writes nothing of its own.
        case splicing
        /// Both sides open.
        case relaying
        /// A close started (by a peer, a vanished side or the proxy).
        case closing
        /// Both channels are gone.
        case ended(RelayEnding)
    }

    /// What one step of reading a buffer asks for.
    enum ReadStep {
        /// Write these bytes toward a side (not flushed: the read-complete flushes).
        case write(ByteBuffer, to: RelaySide)
        /// The buffer is used up (or nothing more from this side is relayed); settle if needed.
        case done
    }

    /// A flush toward a side; `sampleBacklog`: the side's socket backlog is over its high watermark, worth reading.
    struct Flush: Equatable {
        var side: RelaySide
        var sampleBacklog: Bool
    }

    /// What the owner must do, outside the per-read path.
    enum Action: Equatable {
        /// Write a frame of the proxy's own (or a relayed close) toward a side.
        case write(ByteBuffer, to: RelaySide)
        case flush(Flush)
        /// Ask the channel for more bytes.
        case read(RelaySide)
        /// Flush, then shut the side's output; a socket is closed once that is done, a stream waits for the client.
        case shutOutput(RelaySide)
        /// Close one channel now.
        case close(RelaySide)
        /// Close both channels now, dropping what is queued.
        case closeBoth
        /// Bound the close handshake: call ``closeTimedOut()`` after this long.
        case armCloseTimer(TimeAmount)
        /// Call ``tick(now:)`` at this time.
        case scheduleTick(NIODeadline)
        /// The connection is over: cancel the timers, account and log it.
        case finished(RelayEnding)
    }

    /// The timers of ``RelaySettings`` (its frame rules live in the scanners; not kept twice per connection).
    struct Timing {
        var closeTimeout: TimeAmount
        var keepaliveInterval: TimeAmount?
        var idleTimeout: TimeAmount?
        var expiresAt: NIODeadline?
    }

    let timing: Timing
    private(set) var phase = Phase.splicing
    private(set) var client = SideState()
    private(set) var backend = SideState()
    /// Frames read from the client, toward the backend.
    private(set) var fromClient: FrameScanner
    /// Frames read from the backend, toward the client.
    private(set) var fromBackend: FrameScanner
    /// The first close seen.
    private(set) var ending: RelayEnding?
    private(set) var keepalive = KeepaliveState()
    /// A proxy ping waiting to be written to the client.
    private var ping: ByteBuffer?
    /// Messages of the proxy's own for the client, waiting for a message boundary of the backend's stream.
    private(set) var pushes = PushQueue()
    /// Pushed messages written toward the client.
    private(set) var pushedMessages = 0
    private var tickDue: NIODeadline?
    private var closeTimerArmed = false
    private var finishReported = false
    /// Something for ``nextAction()`` to hand out; false on the plain relaying path, so reads skip settling.
    private(set) var needsSettling = false

    init(settings: RelaySettings) {
        self.timing = Timing(
            closeTimeout: settings.closeTimeout, keepaliveInterval: settings.keepaliveInterval,
            idleTimeout: settings.idleTimeout, expiresAt: settings.expiresAt
        )
        self.fromClient = FrameScanner(rules: settings.clientRules)
        self.fromBackend = FrameScanner(rules: settings.backendRules)
    }

    /// One side's state, borrowed or modified in place (never copied: the per-read path goes through here).
    subscript(side: RelaySide) -> SideState {
        _read {
            if side == .client { yield self.client } else { yield self.backend }
        }
        _modify {
            if side == .client { yield &self.client } else { yield &self.backend }
        }
    }

    private var started: Bool {
        if case .splicing = self.phase { return false }
        return true
    }

    /// Data messages written toward the client: the backend's and the proxy's pushes.
    var messagesToClient: Int { self.fromBackend.messages &+ self.pushedMessages }

    /// Whether the scanner of the stream written toward `side` ends on a frame boundary.
    private func onFrameBoundary(toward side: RelaySide) -> Bool {
        side == .client ? self.fromBackend.forwardedWholeFrames : self.fromClient.forwardedWholeFrames
    }

    // MARK: Setup

    /// A side's handler is in its pipeline.
    mutating func attached(_ side: RelaySide, isStream: Bool, writable: Bool) {
        self[side].isStream = isStream
        self[side].writable = writable
    }

    /// Both HTTP handlers are out: flush what the decoders handed over (those reads have no read-complete of their
    /// own), send closes queued meanwhile, start the timers and read on both sides.
    mutating func start(now: NIODeadline) {
        guard case .splicing = self.phase else { return }
        let closing = !(self.isOpen(.client) && self.isOpen(.backend))
        self.phase = closing ? .closing : .relaying
        self.client.flushDue = true
        self.backend.flushDue = true
        self.client.readDue = true
        self.backend.readDue = true
        self.keepalive.clientQuietSince = now
        self.keepalive.dataQuietSince = now
        self.tickDue = self.nextTick(after: now)
        self.needsSettling = true
    }

    private func isOpen(_ side: RelaySide) -> Bool {
        guard self[side].active, case .open = self[side].input, case .open = self[side].output else { return false }
        return true
    }

    // MARK: Reading

    /// One step of relaying `buffer`, read from `side`: call again while it returns `.write`.
    mutating func received(_ buffer: inout ByteBuffer, from side: RelaySide) -> ReadStep {
        // Nothing a peer sends after its close frame is relayed.
        guard case .open = self[side].input else { return .done }
        if side == .client { self.keepalive.clientHeard = true }
        let peer = side.peer
        while true {
            let event = side == .client ? self.fromClient.next(&buffer) : self.fromBackend.next(&buffer)
            switch event {
            case .forward(let run):
                if self[peer].canForward {
                    self[peer].unflushed = true
                    return .write(run, to: peer)
                }
            case .control(let opcode, let frame, let payload):
                if self.control(opcode: opcode, frame: frame, payload: payload, from: side) {
                    self[peer].unflushed = true
                    return .write(frame, to: peer)
                }
                if self[side].input != .open { return .done }
            case .violation(let code, let reason):
                self.violation(by: side, code: WebSocketCloseCode(code), reason: reason)
                return .done
            case .needMore:
                return .done
            }
        }
    }

    /// A held control frame. Returns true when the frame is to be forwarded as it is (a pong that is not an
    /// answer to the proxy's ping).
    private mutating func control(opcode: UInt8, frame: ByteBuffer, payload: [UInt8], from side: RelaySide) -> Bool {
        if opcode == FrameOpcode.pong {
            if side == .client && self.keepalive.isAnswer(payload) {
                self.keepalive.answered()
                self.fromClient.holdPongs = false
                return false
            }
            return self[side.peer].canForward
        }
        guard opcode == FrameOpcode.close else { return false }
        var code: WebSocketCloseCode?
        var reason = ""
        if payload.count >= 2 {
            let value = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard CloseCode.isValidOnTheWire(value) else {
                self.violation(by: side, code: .protocolError, reason: "invalid close code \(value)")
                return false
            }
            guard let text = String(validatingUTF8CString: payload[2...]) else {
                self.violation(by: side, code: .invalidPayload, reason: "close reason is not UTF-8")
                return false
            }
            code = WebSocketCloseCode(value)
            reason = text
        }
        self[side].input = .closeReceived
        if self.ending == nil { self.ending = RelayEnding(code: code, by: .init(side), reason: reason) }
        // Relayed as sent (a client's keeps its mask), unless the proxy already closed toward the peer: either it
        // starts the close handshake, or it answers the close the peer started. The stream toward the peer is on a
        // frame boundary (this frame was just read whole), so it goes out at the next settling.
        if case .open = self[side.peer].output { self[side.peer].output = .closeQueued(frame) }
        self.beginClosing()
        return false
    }

    /// The end of one read burst from `side`: what was forwarded toward its peer is flushed.
    mutating func readComplete(from side: RelaySide) -> Flush? {
        self.takeFlush(side.peer)
    }

    private mutating func takeFlush(_ side: RelaySide) -> Flush? {
        guard self[side].unflushed else { return nil }
        self[side].unflushed = false
        // The backlog is only worth reading when it is over the high watermark: below it, it is bounded anyway.
        return Flush(side: side, sampleBacklog: !self[side].isStream && !self[side].writable)
    }

    // MARK: Backpressure

    /// The channel of `side` asks for a read: true to let it through, false when it is held back.
    mutating func readRequested(by side: RelaySide) -> Bool {
        if !self[side.peer].writable, self[side.peer].active {
            self[side].readPaused = true
            return false
        }
        return true
    }

    /// The channel of `side` changed writability; returns the side whose held read may now go ahead.
    mutating func writabilityChanged(_ side: RelaySide, writable: Bool) -> RelaySide? {
        self[side].writable = writable
        // Pushes wait while the client is not writable (so they stay bounded by the queue): settle to send them.
        if writable, side == .client, !self.pushes.isEmpty { self.needsSettling = true }
        guard writable, self[side.peer].readPaused else { return nil }
        self[side.peer].readPaused = false
        return side.peer
    }

    // MARK: Channel events

    /// `side` ended its input (FIN, END_STREAM).
    mutating func inputClosed(_ side: RelaySide) {
        let hadClose = self[side].input != .open
        self[side].input = .eof
        if !hadClose { self.vanished(side) }
        self.requestFullCloses()
        self.needsSettling = true
    }

    /// The channel of `side` is gone.
    mutating func inactive(_ side: RelaySide) {
        if self[side].input == .open { self.vanished(side) }
        self[side].active = false
        self[side].input = .eof
        self[side].output = .shut
        if !self.client.active && !self.backend.active {
            self.end()
        } else {
            self.requestFullCloses()
        }
        self.needsSettling = true
    }

    /// The channel of `side` failed: it is closed (its inactive event follows).
    func errorCaught(on side: RelaySide) -> Action {
        .close(side)
    }

    /// A side went away without a close frame: the other side is told (1001 for a client, 1014 for a backend).
    private mutating func vanished(_ side: RelaySide) {
        if case .open = self[side].output { self[side].output = .closeSent }
        let code: WebSocketCloseCode = side == .client ? .goingAway : .badGateway
        if self.ending == nil { self.ending = RelayEnding(code: code, by: .init(side), reason: "\(side.rawValue) vanished") }
        self.queueClose(to: side.peer, code: code, reason: side == .client ? "client went away" : "backend went away")
        self.beginClosing()
    }

    // MARK: Pushing

    /// Queues a message of the proxy's own for the client; it is written at the next settling if the backend's
    /// stream toward the client is between messages and the client is writable, else once it is.
    mutating func push(_ message: PushMessage) -> PushOutcome {
        guard self.acceptsPushes else { return .closed }
        guard self.pushes.append(message) else { return .full }
        self.needsSettling = true
        return .queued
    }

    /// Pushes are taken while the client's output is open and no close has started.
    private var acceptsPushes: Bool {
        switch self.phase {
        case .splicing, .relaying: break
        case .closing, .ended: return false
        }
        guard self.client.active, case .open = self.client.output else { return false }
        return true
    }

    /// The next queued push, when it may go out now; drops the queue once the connection is closing.
    private mutating func nextPush() -> Action? {
        guard self.acceptsPushes else {
            self.pushes.removeAll()
            return nil
        }
        // Between the backend's messages: every frame forwarded whole, and no fragmented message open.
        guard self.client.writable, self.fromBackend.forwardedWholeFrames, !self.fromBackend.isInsideMessage,
            let frame = self.pushes.popFirst()
        else { return nil }
        self.pushedMessages &+= 1
        self.client.unflushed = true
        self.client.flushDue = true
        return .write(frame, to: .client)
    }

    // MARK: Closing

    /// Closes with the same code and reason toward both sides (idle, expiry, drain, administrator).
    mutating func close(code: WebSocketCloseCode, reason: String) {
        if self.ending == nil { self.ending = RelayEnding(code: code, by: .proxy, reason: reason) }
        self.queueClose(to: .client, code: code, reason: reason)
        self.queueClose(to: .backend, code: code, reason: reason)
        self.beginClosing()
    }

    /// Closes with a code and reason of each side's own (a drain: 1012 to the client so it reconnects elsewhere,
    /// 1001 to the server, which is going away for it). The ending records the client's.
    mutating func close(client: (code: WebSocketCloseCode, reason: String), backend: (code: WebSocketCloseCode, reason: String)) {
        if self.ending == nil { self.ending = RelayEnding(code: client.code, by: .proxy, reason: client.reason) }
        self.queueClose(to: .client, code: client.code, reason: client.reason)
        self.queueClose(to: .backend, code: backend.code, reason: backend.reason)
        self.beginClosing()
    }

    /// A peer broke the protocol or a limit: it gets `code`, the other side gets the same code, both with a reason.
    private mutating func violation(by side: RelaySide, code: WebSocketCloseCode, reason: String) {
        self[side].input = .closeReceived  // nothing more from the violator is read
        let peerReason = code == .messageTooBig || code == .policyViolation ? reason : "\(side.rawValue) protocol error"
        if self.ending == nil { self.ending = RelayEnding(code: code, by: .proxy, reason: "\(side.rawValue): \(reason)") }
        self.queueClose(to: side, code: code, reason: reason)
        self.queueClose(to: side.peer, code: code, reason: peerReason)
        self.beginClosing()
    }

    /// A close frame of the proxy's own toward `side`, sent once the stream toward it is on a frame boundary.
    private mutating func queueClose(to side: RelaySide, code: WebSocketCloseCode, reason: String) {
        guard self[side].active, case .open = self[side].output else { return }
        self[side].output = .closeQueued(
            ProxyFrame.close(code: code.code, reason: reason, masked: side == .backend, allocator: ByteBufferAllocator())
        )
    }

    private mutating func beginClosing() {
        if case .relaying = self.phase { self.phase = .closing }
        self.needsSettling = true
    }

    /// After the outputs were shut, a side whose input then ends (or whose peer is gone) is closed at once.
    private mutating func requestFullCloses() {
        guard self.client.isDone, self.backend.isDone else { return }
        self.client.requestFullCloseIfShut()
        self.backend.requestFullCloseIfShut()
    }

    /// `close_timeout` passed: both channels are closed whatever state they are in.
    func closeTimedOut() -> Action {
        .closeBoth
    }

    /// Closes both channels at once (process shutdown, the end of a drain).
    func abort() -> Action {
        .closeBoth
    }

    /// The splice failed half way: both channels are closed and the connection is over.
    mutating func abandon() -> Action {
        self.client.active = false
        self.backend.active = false
        self.end()
        return .closeBoth
    }

    private mutating func end() {
        if case .ended = self.phase { return }
        self.phase = .ended(self.ending ?? .unknown)
        self.needsSettling = true
    }

    // MARK: Timers

    /// One tick per connection (on its loop's shared timer, ``TickWheel``) drives keepalive pings, idle detection
    /// and token expiry.
    mutating func tick(now: NIODeadline) {
        guard case .relaying = self.phase else { return }
        if let expiry = self.timing.expiresAt, now >= expiry {
            self.close(code: .policyViolation, reason: "token expired")
            return
        }
        if let interval = self.timing.keepaliveInterval {
            if self.keepalive.clientHeard {
                self.keepalive.clientHeard = false
                self.keepalive.clientQuietSince = now
            }
            if self.keepalive.outstanding != nil {
                if now - self.keepalive.sentAt >= interval * 2 {
                    self.close(code: .goingAway, reason: "keepalive timeout")
                    return
                }
            } else if now - self.keepalive.clientQuietSince >= interval {
                self.sendPing(now: now)
            }
        }
        if let idle = self.timing.idleTimeout {
            let frames = self.fromClient.dataFrames &+ self.fromBackend.dataFrames
            if frames != self.keepalive.dataFrames {
                self.keepalive.dataFrames = frames
                self.keepalive.dataQuietSince = now
            } else if now - self.keepalive.dataQuietSince >= idle {
                self.close(code: .goingAway, reason: "idle timeout")
                return
            }
        }
        self.tickDue = self.nextTick(after: now)
        self.needsSettling = true
    }

    /// Pings the client, unless a frame toward it is half-written (then the next tick tries again).
    private mutating func sendPing(now: NIODeadline) {
        guard self.fromBackend.forwardedWholeFrames, self.client.canForward else { return }
        let payload = self.keepalive.nextPing(now: now)
        self.fromClient.holdPongs = true
        self.ping = ProxyFrame.ping(payload: payload, masked: false, allocator: ByteBufferAllocator())
    }

    private func nextTick(after now: NIODeadline) -> NIODeadline? {
        var next: NIODeadline?
        func consider(_ deadline: NIODeadline) {
            next = next.map { min($0, deadline) } ?? deadline
        }
        if let interval = self.timing.keepaliveInterval {
            consider(now + .nanoseconds(max(interval.nanoseconds / 2, 10_000_000)))
        }
        if let idle = self.timing.idleTimeout {
            consider(now + .nanoseconds(max(idle.nanoseconds / 4, 10_000_000)))
        }
        if let expiry = self.timing.expiresAt {
            consider(max(expiry, now + .milliseconds(1)))
        }
        return next
    }

    // MARK: Actions

    /// The next thing to do, or nil when everything is done: call until nil after any event that set
    /// ``needsSettling``. Order: frames of the proxy's own (closes, ping, pushes), flushes, output shutdowns, the close
    /// timer, the tick, reads, the end.
    mutating func nextAction() -> Action? {
        guard self.needsSettling else { return nil }
        if case .ended(let ending) = self.phase {
            self.needsSettling = false
            guard !self.finishReported else { return nil }
            self.finishReported = true
            return .finished(ending)
        }
        guard self.started else {
            self.needsSettling = false
            return nil
        }
        if let action = self.sendQueuedClose(to: .client) ?? self.sendQueuedClose(to: .backend) { return action }
        if let ping = self.ping {
            self.ping = nil
            if self.client.canForward {
                self.client.unflushed = true
                self.client.flushDue = true
                return .write(ping, to: .client)
            }
        }
        if !self.pushes.isEmpty, let action = self.nextPush() { return action }
        if let action = self.dueFlush(.client) ?? self.dueFlush(.backend) { return action }
        if self.client.isDone && self.backend.isDone, let action = self.shutdown(.client) ?? self.shutdown(.backend) {
            return action
        }
        if case .closing = self.phase, !self.closeTimerArmed {
            self.closeTimerArmed = true
            return .armCloseTimer(self.timing.closeTimeout)
        }
        if let deadline = self.tickDue {
            self.tickDue = nil
            if case .relaying = self.phase { return .scheduleTick(deadline) }
        }
        if let action = self.dueRead(.client) ?? self.dueRead(.backend) { return action }
        // A close waiting for a frame boundary, and pushes waiting for a message boundary (or for the client to be
        // writable), are looked at again after the next bytes toward their side.
        self.needsSettling = self.client.hasQueuedClose || self.backend.hasQueuedClose || !self.pushes.isEmpty
        return nil
    }

    private mutating func sendQueuedClose(to side: RelaySide) -> Action? {
        guard case .closeQueued(let frame) = self[side].output, self.onFrameBoundary(toward: side) else { return nil }
        self[side].output = .closeSent
        guard self[side].active else { return nil }
        self[side].unflushed = true
        self[side].flushDue = true
        return .write(frame, to: side)
    }

    private mutating func dueFlush(_ side: RelaySide) -> Action? {
        guard self[side].flushDue else { return nil }
        self[side].flushDue = false
        return self.takeFlush(side).map(Action.flush)
    }

    /// Both sides are done: each output is shut after a flush (END_STREAM for a stream); a socket whose output is
    /// already shut is closed once its input ends too.
    private mutating func shutdown(_ side: RelaySide) -> Action? {
        guard self[side].active else { return nil }
        if case .shut = self[side].output {
            guard self[side].closeDue else { return nil }
            self[side].closeDue = false
            return .close(side)
        }
        self[side].output = .shut
        self[side].unflushed = false
        self[side].flushDue = false
        return .shutOutput(side)
    }

    private mutating func dueRead(_ side: RelaySide) -> Action? {
        guard self[side].readDue else { return nil }
        self[side].readDue = false
        return self[side].active ? .read(side) : nil
    }
}

extension RelayStateMachine.InputState: Equatable {}

extension String {
    /// Decodes UTF-8, failing on invalid sequences (close reasons must be valid UTF-8).
    init?(validatingUTF8CString bytes: ArraySlice<UInt8>) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        self = text
    }
}
