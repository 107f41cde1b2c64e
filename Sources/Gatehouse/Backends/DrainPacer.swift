import NIOCore

/// When to close each connection of a leaving server: `rate` per second on average, each slot moved by up to half
/// a slot of jitter, so clients reconnect elsewhere spread out instead of all at once. Pure; the random numbers are
/// passed in.
struct DrainPacer: Sendable {
    let rate: Int

    init(rate: Int) {
        self.rate = max(1, rate)
    }

    /// Delays from now for `count` connections, ascending; `jitter(i)` returns a value in 0..<1 for connection i.
    func delays(count: Int, jitter: (Int) -> Double) -> [TimeAmount] {
        let slot = 1e9 / Double(self.rate)
        return (0..<count).map { index in
            let offset = (jitter(index) - 0.5) * slot
            return .nanoseconds(Int64(max(0, Double(index) * slot + offset)))
        }.sorted()
    }
}
