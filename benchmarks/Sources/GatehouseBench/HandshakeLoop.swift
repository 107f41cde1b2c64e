import Histogram
import NIOCore

/// One handshake connector: strictly sequential cycles of connect (+TLS), upgrade, close, until the window ends.
///
/// It runs entirely as callbacks on one event loop: hopping to Swift concurrency between cycles would add thread
/// wake-ups to every handshake, which is client cost the server under test should not be charged with.
final class HandshakeLoop {
    /// What one loop measured.
    struct Result: Sendable {
        var latency = LatencyHistogram.make()
        /// Cycles started and finished inside the window with the close answered.
        var handshakes = 0
        var errors = 0
        var firstError: String?
    }

    private let connector: WebSocketConnector
    private let eventLoop: EventLoop
    private let measureFrom: NIODeadline
    private let until: NIODeadline
    private let done: EventLoopPromise<Result>
    private var result = Result()

    private init(connector: WebSocketConnector, eventLoop: EventLoop, measureFrom: NIODeadline, until: NIODeadline) {
        self.connector = connector
        self.eventLoop = eventLoop
        self.measureFrom = measureFrom
        self.until = until
        self.done = eventLoop.makePromise(of: Result.self)
    }

    /// Starts a loop on `eventLoop`; the future delivers its result once the window has ended.
    static func run(
        connector: WebSocketConnector, eventLoop: EventLoop, measureFrom: NIODeadline, until: NIODeadline
    ) -> EventLoopFuture<Result> {
        eventLoop.flatSubmit {
            let loop = HandshakeLoop(connector: connector, eventLoop: eventLoop, measureFrom: measureFrom, until: until)
            loop.cycle()
            return loop.done.futureResult
        }
    }

    private func cycle() {
        let start = NIODeadline.now()
        guard start < self.until else {
            self.done.succeed(self.result)
            return
        }
        let closed = self.eventLoop.makePromise(of: Bool.self)
        self.connector.connect(on: self.eventLoop) { sync in
            try sync.addHandler(CloseAfterUpgradeHandler(promise: closed))
        }.assumeIsolated().whenComplete { outcome in
            switch outcome {
            case .success:
                let upgraded = NIODeadline.now()
                closed.futureResult.assumeIsolated().whenSuccess { answered in
                    self.finished(start: start, upgraded: upgraded, answered: answered)
                }
            case .failure(let error):
                // The close handler never existed when the upgrade failed; complete its promise so nothing leaks.
                closed.fail(error)
                self.failed("\(error)")
                // Back off a little so a refusing server does not turn the loop into a spin.
                self.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(10)) { self.cycle() }
            }
        }
    }

    private func finished(start: NIODeadline, upgraded: NIODeadline, answered: Bool) {
        let end = NIODeadline.now()
        if !answered {
            self.failed("server did not answer the close frame")
        } else if start >= self.measureFrom && end <= self.until {
            self.result.handshakes += 1
            LatencyHistogram.record(&self.result.latency, nanoseconds: upgraded.uptimeNanoseconds - start.uptimeNanoseconds)
        }
        // Start the next cycle from a fresh stack: the close may have completed inside this one's call chain.
        self.eventLoop.assumeIsolated().execute { self.cycle() }
    }

    private func failed(_ description: String) {
        self.result.errors += 1
        if self.result.firstError == nil { self.result.firstError = description }
    }
}
