import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Text lines that arrive while a test runs (captured log records, a child process's output), with an event-driven
/// wait: a waiter is woken by the line it waits for, or by its deadline, never by polling.
final class LineCollector: Sendable {
    private struct Waiter {
        var text: String
        var continuation: CheckedContinuation<String?, Never>
    }

    private struct State {
        var lines: [String] = []
        var waiters: [Int: Waiter] = [:]
        var nextWaiter = 0
    }

    private let state = NIOLockedValueBox(State())

    var all: [String] { self.state.withLockedValue { $0.lines } }

    func append(_ line: String) {
        let woken = self.state.withLockedValue { state -> [CheckedContinuation<String?, Never>] in
            state.lines.append(line)
            let matching = state.waiters.filter { line.contains($0.value.text) }
            for id in matching.keys { state.waiters[id] = nil }
            return matching.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume(returning: line) }
    }

    /// The first line containing `text`, already there or arriving within `timeout`.
    func waitForLine(containing text: String, timeout: Duration, what: String) async throws -> String {
        let line: String? = await withCheckedContinuation { continuation in
            let registered: (id: Int?, found: String?) = self.state.withLockedValue { state in
                if let line = state.lines.first(where: { $0.contains(text) }) { return (nil, line) }
                let id = state.nextWaiter
                state.nextWaiter += 1
                state.waiters[id] = Waiter(text: text, continuation: continuation)
                return (id, nil)
            }
            guard let id = registered.id else {
                continuation.resume(returning: registered.found)
                return
            }
            let (seconds, attoseconds) = timeout.components
            let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
            MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(nanoseconds)) {
                let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                waiter?.continuation.resume(returning: nil)
            }
        }
        guard let line else { throw TestError.timeout(what) }
        return line
    }
}
