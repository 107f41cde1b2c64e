/// Opens many connections with at most `concurrency` handshakes in flight and at most `perSecond` started per
/// second, so a burst of connects measures the server and not the kernel's accept backlog overflowing.
struct ConnectPacer: Sendable {
    var concurrency: Int
    var perSecond: Int

    /// What opening produced.
    struct Outcome<Opened: Sendable>: Sendable {
        var opened: [Opened] = []
        var failures = 0
        /// The first failure, to explain a failing run.
        var firstError: String?
        var seconds = 0.0
    }

    /// Opens `count` connections with `open(index)`; stops starting new ones at `deadline`.
    func openAll<Opened: Sendable>(
        count: Int,
        deadline: ContinuousClock.Instant,
        open: @escaping @Sendable (Int) async throws -> Opened
    ) async -> Outcome<Opened> {
        let clock = ContinuousClock()
        let start = clock.now
        let interval = Duration.seconds(1) / Swift.max(1, self.perSecond)
        var outcome = Outcome<Opened>()
        await withTaskGroup(of: Result<Opened, any Error>.self) { group in
            var inFlight = 0
            func collect(_ result: Result<Opened, any Error>?) {
                inFlight -= 1
                switch result {
                case .success(let opened): outcome.opened.append(opened)
                case .failure(let error):
                    outcome.failures += 1
                    if outcome.firstError == nil { outcome.firstError = "\(error)" }
                case nil: break
                }
            }
            for index in 0..<count {
                if inFlight >= self.concurrency { collect(await group.next()) }
                let slot = start + interval * index
                if clock.now < slot { try? await clock.sleep(until: slot) }
                if clock.now >= deadline {
                    outcome.failures += count - index
                    if outcome.firstError == nil { outcome.firstError = "opening did not finish in time" }
                    break
                }
                inFlight += 1
                group.addTask {
                    do {
                        return .success(try await open(index))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            while inFlight > 0 { collect(await group.next()) }
        }
        outcome.seconds = (clock.now - start).seconds
        return outcome
    }
}

extension Duration {
    /// Seconds as a `Double`, for reports.
    var seconds: Double {
        let parts = self.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
