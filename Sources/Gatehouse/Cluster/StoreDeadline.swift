/// Bounds a call to the cluster store: an engine may wait for a connection indefinitely while the database is
/// down, and nothing that answers a client or an operator may wait with it.
enum StoreDeadline {
    struct Exceeded: Error, CustomStringConvertible {
        let after: Duration
        var description: String { "the cluster store did not answer within \(after)" }
    }

    static func run<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw Exceeded(after: limit)
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw Exceeded(after: limit) }
            return first
        }
    }
}
