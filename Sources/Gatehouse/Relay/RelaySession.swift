import NIOCore

/// Relays one upgraded connection between a client channel and a backend channel on the same event loop.
///
/// Bytes read on one side are written to the other without copying. Backpressure: when the channel being written
/// to passes its high watermark (`buffer_bytes`), reads on the side feeding it are held back until it drains below
/// the low watermark, so the proxy never holds more than `buffer_bytes` plus one read per direction.
final class RelaySession {
    private struct Peer {
        var context: ChannelHandlerContext?
        var readParked = false
        var inputClosed = false
        var outputClosed = false
        var active = true
        var unflushed = false
    }

    /// What the access log and admin API know of this connection.
    let record: ConnectionRecord
    private let closeTimeout: TimeAmount
    private let onEnd: (RelaySession) -> Void
    private var client = Peer()
    private var backend = Peer()
    private var ended = false
    private var closeTimer: Scheduled<Void>?

    init(record: ConnectionRecord, closeTimeout: TimeAmount, onEnd: @escaping (RelaySession) -> Void) {
        self.record = record
        self.closeTimeout = closeTimeout
        self.onEnd = onEnd
    }

    private subscript(side: RelaySide) -> Peer {
        get { side == .client ? self.client : self.backend }
        set {
            if side == .client { self.client = newValue } else { self.backend = newValue }
        }
    }

    /// Whether reads from `side` are held back by backpressure.
    func isReadPaused(_ side: RelaySide) -> Bool {
        self[side].readParked
    }

    func attach(_ side: RelaySide, context: ChannelHandlerContext) {
        self[side].context = context
    }

    /// Starts relaying once both handlers are in place: flushes what the decoders handed over when they were
    /// removed (those reads have no read-complete of their own), then starts reading on both sides.
    func start() {
        self.readComplete(from: .client)
        self.readComplete(from: .backend)
        self.client.context?.read()
        self.backend.context?.read()
    }

    func received(_ buffer: ByteBuffer, from side: RelaySide) {
        let target = side.peer
        guard let context = self[target].context, !self[target].outputClosed else { return }
        if side == .client {
            self.record.bytesFromClient &+= buffer.readableBytes
        } else {
            self.record.bytesFromBackend &+= buffer.readableBytes
        }
        context.write(NIOAny(buffer), promise: nil)
        self[target].unflushed = true
    }

    func readComplete(from side: RelaySide) {
        let target = side.peer
        guard self[target].unflushed, let context = self[target].context else { return }
        self[target].unflushed = false
        context.flush()
        self.sampleBacklog(context)
    }

    func readRequested(by side: RelaySide) {
        guard let context = self[side].context else { return }
        if let peer = self[side.peer].context, !peer.channel.isWritable, self[side.peer].active {
            self[side].readParked = true
        } else {
            context.read()
        }
    }

    func writabilityChanged(_ side: RelaySide) {
        guard let context = self[side].context, context.channel.isWritable else { return }
        let feeder = side.peer
        if self[feeder].readParked, let feederContext = self[feeder].context {
            self[feeder].readParked = false
            feederContext.read()
        }
    }

    /// The side sent FIN: pass the half-close on, and finish once both directions are done.
    func inputClosed(_ side: RelaySide) {
        self[side].inputClosed = true
        self.shutdownOutput(side.peer)
        if self[side.peer].inputClosed {
            self.closeBoth()
        }
    }

    func inactive(_ side: RelaySide) {
        self[side].active = false
        self[side].outputClosed = true
        if self[side.peer].active {
            self.closeAfterFlush(side.peer)
        } else {
            self.end()
        }
    }

    func failed(_ side: RelaySide, error: Error) {
        self[side].context?.close(promise: nil)
    }

    /// Closes both sides at once, dropping anything queued (process shutdown).
    func abort() {
        self.client.context?.close(promise: nil)
        self.backend.context?.close(promise: nil)
    }

    /// Closes both sides after flushing what is queued toward them.
    func closeBoth() {
        self.closeAfterFlush(.client)
        self.closeAfterFlush(.backend)
    }

    private func shutdownOutput(_ side: RelaySide) {
        guard !self[side].outputClosed, let context = self[side].context else { return }
        self[side].outputClosed = true
        context.flush()
        context.close(mode: .output, promise: nil)
    }

    private func closeAfterFlush(_ side: RelaySide) {
        guard self[side].active, let context = self[side].context else { return }
        if !self[side].outputClosed {
            self[side].outputClosed = true
            context.flush()
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            context.close(mode: .output, promise: promise)
        } else {
            context.close(promise: nil)
        }
        self.armCloseTimer()
    }

    /// Bounds the wait for peers that never finish closing.
    private func armCloseTimer() {
        guard self.closeTimer == nil, let loop = (self.client.context ?? self.backend.context)?.eventLoop else { return }
        let contexts = [self.client.context, self.backend.context].compactMap { $0 }
        let bound = NIOLoopBound(contexts, eventLoop: loop)
        self.closeTimer = loop.scheduleTask(in: self.closeTimeout) {
            for context in bound.value { context.close(promise: nil) }
        }
    }

    private func sampleBacklog(_ context: ChannelHandlerContext) {
        guard let queued = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) else { return }
        if queued > self.record.peakBufferedBytes { self.record.peakBufferedBytes = queued }
    }

    private func end() {
        guard !self.ended else { return }
        self.ended = true
        self.closeTimer?.cancel()
        self.onEnd(self)
    }
}
