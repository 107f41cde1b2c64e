import NIOCore

/// State owned by one event loop: the configuration it admits new connections with and the connections it relays.
///
/// Only touched on its own loop, so the handshake path reads configuration without any lock.
final class LoopContext: @unchecked Sendable {
    let eventLoop: EventLoop
    private var _state: ProxyState
    private var _sessions: [UInt64: RelaySession] = [:]

    init(eventLoop: EventLoop, state: ProxyState) {
        self.eventLoop = eventLoop
        self._state = state
    }

    /// The configuration new handshakes on this loop use.
    var state: ProxyState {
        get {
            self.eventLoop.preconditionInEventLoop()
            return self._state
        }
        set {
            self.eventLoop.preconditionInEventLoop()
            self._state = newValue
        }
    }

    /// Live relayed connections on this loop, by id.
    var sessions: [UInt64: RelaySession] {
        get {
            self.eventLoop.preconditionInEventLoop()
            return self._sessions
        }
        _modify {
            self.eventLoop.preconditionInEventLoop()
            yield &self._sessions
        }
    }
}
