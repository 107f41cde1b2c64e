import GatehouseCluster
import Synchronization

/// Gathers the nodes' answers to one bus command until every expected node answered or the time is up.
final class ReplyCollector: Sendable {
    private struct State {
        var expected: Set<String>
        var replies: [String: BusReply] = [:]
        var continuation: CheckedContinuation<Void, Never>?
        var done = false
    }

    private let state: Mutex<State>

    init(expecting nodes: Set<String>) {
        self.state = Mutex(State(expected: nodes, done: nodes.isEmpty))
    }

    /// An answer from `node`; answers from nodes not asked are kept too (a node that just joined).
    func add(_ reply: BusReply, from node: String) {
        let waiting = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.replies[node] = reply
            guard !state.done, state.expected.isSubset(of: state.replies.keys) else { return nil }
            state.done = true
            defer { state.continuation = nil }
            return state.continuation
        }
        waiting?.resume()
    }

    /// Stops waiting (time is up, or the command could not be sent).
    func finish() {
        let waiting = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.done = true
            defer { state.continuation = nil }
            return state.continuation
        }
        waiting?.resume()
    }

    /// Waits for every expected answer, at most `timeout`; returns the answers by node and the nodes that did not answer.
    func wait(timeout: Duration) async -> (replies: [String: BusReply], silent: Set<String>) {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state -> Bool in
                        if state.done { return true }
                        state.continuation = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.finish()
            }
            await group.next()
            group.cancelAll()
        }
        return self.state.withLock { state in
            (state.replies, state.expected.subtracting(state.replies.keys))
        }
    }
}
