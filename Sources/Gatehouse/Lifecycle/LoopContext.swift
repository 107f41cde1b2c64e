import NIOCore

/// State owned by one event loop: the configuration it admits new connections with and the connections it relays.
///
/// Only touched on its own loop, so the handshake path reads configuration without any lock.
final class LoopContext: @unchecked Sendable {
    let eventLoop: EventLoop
    private var _state: ProxyState
    private var _connections: [UInt64: RelayConnection] = [:]
    private var _trafficPending: [RelayConnection] = []
    private var _http2Connections: [ObjectIdentifier: HTTP2ConnectionWatcher] = [:]

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

    /// Connections whose traffic has not reached the metrics yet: the relay path only appends here, counters are
    /// updated when metrics are read (no shared atomics per read).
    var trafficPending: [RelayConnection] {
        get {
            self.eventLoop.preconditionInEventLoop()
            return self._trafficPending
        }
        _modify {
            self.eventLoop.preconditionInEventLoop()
            yield &self._trafficPending
        }
    }

    /// Adds pending traffic to the route counters.
    func publishTraffic() {
        let pending = self.trafficPending
        self.trafficPending.removeAll(keepingCapacity: true)
        for connection in pending where connection.trafficDirty { connection.reportTraffic() }
    }

    /// Open HTTP/2 client connections on this loop (their streams are in `connections`), for drain's GOAWAY.
    var http2Connections: [ObjectIdentifier: HTTP2ConnectionWatcher] {
        get {
            self.eventLoop.preconditionInEventLoop()
            return self._http2Connections
        }
        _modify {
            self.eventLoop.preconditionInEventLoop()
            yield &self._http2Connections
        }
    }

    /// Live relayed connections on this loop, by id.
    var connections: [UInt64: RelayConnection] {
        get {
            self.eventLoop.preconditionInEventLoop()
            return self._connections
        }
        _modify {
            self.eventLoop.preconditionInEventLoop()
            yield &self._connections
        }
    }
}
