/// Runs `body`, failing with a timeout error if it takes longer than `seconds`.
func withTimeout<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TestError.timeout(what)
        }
        guard let result = try await group.next() else { throw TestError.timeout(what) }
        group.cancelAll()
        return result
    }
}
