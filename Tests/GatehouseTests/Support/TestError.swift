/// Failures of the test harness itself, distinct from assertion failures.
struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    static func timeout(_ what: String) -> TestError { TestError("timed out waiting for \(what)") }
}
