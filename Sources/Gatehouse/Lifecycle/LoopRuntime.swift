import NIOCore

/// What is mutable on one event loop: the ``ServingState`` it admits new connections with, the connections it
/// relays, their tick deadlines (one timer for all of them), their traffic not yet published to the metrics and its
/// HTTP/2 client connections.
///
/// Only touched on its own loop, so the handshake path reads configuration without any lock.
final class LoopRuntime: @unchecked Sendable {
    let eventLoop: EventLoop
    private var _state: ServingState
    private var _connections: [UInt64: RelayConnection] = [:]
    private var _trafficPending: [RelayConnection] = []
    private var _http2Connections: [ObjectIdentifier: HTTP2ConnectionWatcher] = [:]
    private var ticks = TickWheel()
    /// The loop's one tick timer, and when it fires.
    private var tickTimer: (task: Scheduled<Void>, at: NIODeadline)?
    private var firingTicks = false

    init(eventLoop: EventLoop, state: ServingState) {
        self.eventLoop = eventLoop
        self._state = state
    }

    /// The configuration new handshakes on this loop use.
    var state: ServingState {
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

    // MARK: Tick timers

    /// Calls `connection`'s ``RelayConnection/tickDue()`` at `deadline` (or up to 10 ms later), replacing the
    /// deadline it had.
    func scheduleTick(_ connection: RelayConnection, at deadline: NIODeadline) {
        self.eventLoop.preconditionInEventLoop()
        self.ticks.schedule(connection.record.id, at: deadline, now: .now())
        if !self.firingTicks { self.armTickTimer() }
    }

    /// Forgets `connection`'s tick (it ended).
    func cancelTick(_ connection: RelayConnection) {
        self.eventLoop.preconditionInEventLoop()
        self.ticks.cancel(connection.record.id)
    }

    /// Arms the timer for the earliest tick when that is sooner than the timer (a later one waits for the firing).
    private func armTickTimer() {
        guard let earliest = self.ticks.earliest() else { return }
        if let armed = self.tickTimer {
            if armed.at <= earliest { return }
            armed.task.cancel()
        }
        let task = self.eventLoop.assumeIsolated().scheduleTask(deadline: earliest) { self.fireTicks(armedAt: earliest) }
        self.tickTimer = (task, earliest)
    }

    /// `armedAt`: the timer never fires before it, so the slots up to it are due whatever the clock says.
    private func fireTicks(armedAt: NIODeadline) {
        self.tickTimer = nil
        self.firingTicks = true
        for id in self.ticks.due(now: max(.now(), armedAt)) { self._connections[id]?.tickDue() }
        self.firingTicks = false
        self.armTickTimer()
    }
}
