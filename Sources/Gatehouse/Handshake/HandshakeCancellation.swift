import NIOCore

/// Lets the client side of one handshake call off the backend work it started: when the client closes, resets
/// its stream or loses its connection, the backend connection being opened is closed at once and no further
/// server of the pool is tried, instead of being held until the backend answers or `response_timeout` passes.
///
/// Created by the handshake handler and used only on its event loop (the backend channel lives there too), so it
/// needs no lock.
final class HandshakeCancellation: @unchecked Sendable {
    /// The error the backend attempt fails with once cancelled; not a backend failure.
    struct Cancelled: Error {}

    private let eventLoop: EventLoop
    private var cancelled = false
    private var finished = false
    private var backend: Channel?

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    var isCancelled: Bool {
        self.eventLoop.preconditionInEventLoop()
        return self.cancelled
    }

    /// Records the backend channel being opened. False (and the channel closed) when already cancelled.
    func register(_ channel: Channel) -> Bool {
        self.eventLoop.preconditionInEventLoop()
        guard !self.cancelled else {
            channel.close(promise: nil)
            return false
        }
        self.backend = channel
        return true
    }

    /// The backend attempt on `channel` has its answer: it is no longer this object's to close.
    func unregister(_ channel: Channel) {
        self.eventLoop.preconditionInEventLoop()
        if self.backend === channel { self.backend = nil }
    }

    /// The handshake reached its outcome (relayed or answered): later client events cancel nothing.
    func finish() {
        self.eventLoop.preconditionInEventLoop()
        self.finished = true
        self.backend = nil
    }

    /// The client went away: close the backend attempt in flight and stop trying.
    func cancel() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.finished, !self.cancelled else { return }
        self.cancelled = true
        self.backend?.close(promise: nil)
        self.backend = nil
    }
}
