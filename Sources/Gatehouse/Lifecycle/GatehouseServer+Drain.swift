import NIOCore

extension GatehouseServer {
    /// Graceful drain: stop accepting, answer new handshakes 503, send close 1001 "server shutting down" to every
    /// client and backend and GOAWAY to every HTTP/2 connection, and return when all connections are closed or `timeout` passed (then the stragglers
    /// are cut). Listeners stay closed; the process may then exit.
    public func drain(timeout: Duration) async {
        self.engine.startDraining()
        await self.closeListeners()
        for loop in self.engine.allLoops {
            try? await loop.eventLoop.submit {
                for connection in loop.connections.values {
                    connection.close(code: .goingAway, reason: "server shutting down")
                }
                for connection in loop.http2Connections.values { connection.drain() }
            }.get()
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await self.liveConnectionCount() == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        for loop in self.engine.allLoops {
            try? await loop.eventLoop.submit {
                for connection in loop.connections.values { connection.abort() }
            }.get()
        }
    }

    /// Whether a drain has started.
    public var isDraining: Bool { self.engine.isDraining }
}
