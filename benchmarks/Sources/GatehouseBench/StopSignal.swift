import Dispatch
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns SIGTERM and SIGINT into a flag, so a hold can end early and still close its connections and report.
final class StopSignal {
    private let raised: NIOLockedValueBox<Bool>
    /// Kept only so the sources stay alive; never mutated after `init`.
    private let sources: [DispatchSourceSignal]

    init() {
        let raised = NIOLockedValueBox(false)
        let queue = DispatchQueue(label: "gatehouse-bench.signals")
        var made: [DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT] {
            // The default action would kill the process before it can close its connections and report.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { raised.withLockedValue { $0 = true } }
            source.resume()
            made.append(source)
        }
        self.raised = raised
        self.sources = made
    }

    var isRaised: Bool { self.raised.withLockedValue { $0 } }

    /// Sleeps until `deadline` or a signal, whichever comes first, checking every 100 ms.
    func wait(until deadline: ContinuousClock.Instant) async {
        let clock = ContinuousClock()
        while !self.isRaised && clock.now < deadline {
            try? await clock.sleep(until: Swift.min(deadline, clock.now + .milliseconds(100)))
        }
    }
}
