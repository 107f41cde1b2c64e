/// Waits until `condition` holds, re-checking it on a short backoff until `deadline`.
///
/// The one place where tests poll. Use it only for state that no event announces outside `Sources/`: the proxy's
/// connection snapshots (`connections()`: pause flags, the table emptying), the pending-connection counter, and a
/// route slot coming back (its release is not observable except by trying the route). Everything that does signal
/// (bytes or EOF at a peer: `InboundCollector`; a log or output line: `LineCollector`; a process exiting:
/// `ChildProcess`; a channel's `closeFuture`) is awaited directly.
func eventually(_ what: String, deadline: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
    _ = try await eventuallyValue(what, deadline: deadline) { try await condition() ? true : nil }
}

/// Waits until `produce` returns a value (see `eventually` for when polling is acceptable).
func eventuallyValue<T>(_ what: String, deadline: Duration = .seconds(10), _ produce: () async throws -> T?) async throws -> T {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    var pause = Duration.milliseconds(5)
    while true {
        if let value = try await produce() { return value }
        guard clock.now < end else { throw TestError.timeout(what) }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, .milliseconds(100))
    }
}
