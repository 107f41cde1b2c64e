import NIOConcurrencyHelpers
import NIOCore

/// Caps the requests in flight toward one introspection endpoint. Beyond the cap, callers wait in a bounded FIFO
/// queue (their caller's deadline bounds the wait); beyond the queue they are refused at once.
final class IntrospectionLimiter: Sendable {
    /// The queue is full.
    struct Busy: Error {}

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        var inUse = 0
        var waiters = CircularBuffer<Waiter>()
        var nextID: UInt64 = 0
    }

    let permits: Int
    let maxWaiting: Int
    private let state: NIOLockedValueBox<State>

    init(permits: Int, maxWaiting: Int) {
        self.permits = max(1, permits)
        self.maxWaiting = max(0, maxWaiting)
        self.state = NIOLockedValueBox(State(available: self.permits))
    }

    /// Requests in flight now.
    var inUse: Int { self.state.withLockedValue { $0.inUse } }
    /// Callers waiting for a slot now.
    var waiting: Int { self.state.withLockedValue { $0.waiters.count } }

    /// Takes a slot, waiting for one if needed. Throws ``Busy`` when the queue is full and `CancellationError` when
    /// the task is cancelled while waiting. Every successful call must be paired with ``release()``.
    func acquire() async throws {
        let id = self.state.withLockedValue { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let result: Result<Void, any Error>? = self.state.withLockedValue { state in
                    // Checked under the lock: a cancellation handler that ran before this found no waiter to remove.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.available > 0 {
                        state.available -= 1
                        state.inUse += 1
                        return .success(())
                    }
                    guard state.waiters.count < self.maxWaiting else { return .failure(Busy()) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let cancelled = self.state.withLockedValue { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Returns a slot: handed to the first waiter, if any.
    func release() {
        let next = self.state.withLockedValue { state -> Waiter? in
            if let waiter = state.waiters.popFirst() { return waiter }
            state.available += 1
            state.inUse -= 1
            return nil
        }
        next?.continuation.resume()
    }
}
