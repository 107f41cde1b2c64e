import Foundation
import Synchronization

/// Writes log lines to standard error from a background thread, so no event loop ever blocks on a terminal or pipe.
///
/// The queue is bounded: when the consumer cannot keep up, new lines are dropped and counted rather than
/// growing memory without limit.
public final class LogWriter: Sendable {
    /// The process-wide writer.
    public static let standardError = LogWriter(fileDescriptor: 2)

    private struct Queue {
        var lines: [String] = []
        var dropped = 0
    }

    private let fileDescriptor: Int32
    private let queue = Mutex(Queue())
    private let wakeup = DispatchSemaphore(value: 0)
    private let maxQueued = 100_000

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
        let thread = Thread { [self] in self.drainForever() }
        thread.name = "gatehouse-log"
        thread.start()
    }

    /// Queues one line (a newline is added).
    public func write(_ line: String) {
        let queued = self.queue.withLock { queue -> Bool in
            guard queue.lines.count < self.maxQueued else {
                queue.dropped += 1
                return false
            }
            queue.lines.append(line)
            return queue.lines.count == 1
        }
        if queued { self.wakeup.signal() }
    }

    /// Lines dropped because the queue was full.
    public var droppedLines: Int {
        self.queue.withLock { $0.dropped }
    }

    /// Waits (bounded) until queued lines are written; for shutdown.
    public func flush(timeout: Duration = .seconds(2)) {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if self.queue.withLock({ $0.lines.isEmpty }) { return }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    private func drainForever() {
        while true {
            self.wakeup.wait()
            while true {
                let batch = self.queue.withLock { queue -> [String] in
                    defer { queue.lines.removeAll(keepingCapacity: true) }
                    return queue.lines
                }
                if batch.isEmpty { break }
                var text = batch.joined(separator: "\n")
                text.append("\n")
                text.withCString { pointer in
                    var offset = 0
                    let length = strlen(pointer)
                    while offset < length {
                        let written = Foundation.write(self.fileDescriptor, pointer + offset, length - offset)
                        if written <= 0 { break }
                        offset += written
                    }
                }
            }
        }
    }
}
