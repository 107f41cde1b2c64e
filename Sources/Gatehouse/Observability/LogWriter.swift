import Foundation
import Synchronization

/// Writes log records to standard error from a background thread, so no event loop ever blocks on a terminal or pipe.
///
/// The queue is bounded in bytes (and in records): a record counts against the budget from the moment it is queued
/// until it has been written, so when the reader stalls (a pipe nobody reads) memory stays within the budget and new
/// records are dropped and counted. Only the writer thread ever waits on the descriptor.
public final class LogWriter: Sendable {
    /// The process-wide writer.
    public static let standardError = LogWriter(fileDescriptor: 2)

    private struct Queue {
        var records: [String] = []
        /// Bytes of queued records plus those taken by the writer thread and not yet written.
        var bytes = 0
        var dropped = 0
    }

    /// Records queued at most, whatever their size (tiny records cost more than their bytes).
    static let maxQueuedRecords = 100_000
    /// Bytes handed to one `write(2)` at most, so a batch is never copied whole.
    static let chunkBytes = 64 << 10

    private let fileDescriptor: Int32
    private let queue = Mutex(Queue())
    private let wakeup = DispatchSemaphore(value: 0)

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
        let thread = Thread { [self] in self.drainForever() }
        thread.name = "gatehouse-log"
        thread.start()
    }

    /// Queues one record (a newline is added), or drops and counts it when `budget` bytes are already queued.
    public func write(_ record: String, budget: Int = LogConfig.defaultQueueBytes) {
        let cost = record.utf8.count + 1
        let first = self.queue.withLock { queue -> Bool in
            guard queue.records.count < Self.maxQueuedRecords, queue.bytes + cost <= budget else {
                queue.dropped += 1
                return false
            }
            queue.records.append(record)
            queue.bytes += cost
            return queue.records.count == 1
        }
        if first { self.wakeup.signal() }
    }

    /// Records dropped because the queue was full or the descriptor failed.
    public var droppedRecords: Int {
        self.queue.withLock { $0.dropped }
    }

    /// Bytes queued or being written.
    public var queuedBytes: Int {
        self.queue.withLock { $0.bytes }
    }

    /// Waits (bounded) until queued records are written; for shutdown. Returns whether everything was written.
    @discardableResult
    public func flush(timeout: Duration = .seconds(2)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if self.queuedBytes == 0 { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return self.queuedBytes == 0
    }

    private func drainForever() {
        var chunk: [UInt8] = []
        chunk.reserveCapacity(Self.chunkBytes)
        while true {
            self.wakeup.wait()
            while true {
                var batch = self.queue.withLock { queue -> [String] in
                    defer { queue.records = [] }
                    return queue.records
                }
                if batch.isEmpty { break }
                var records = 0
                for index in batch.indices {
                    chunk.append(contentsOf: batch[index].utf8)
                    chunk.append(UInt8(ascii: "\n"))
                    // Frees the record now: the budget is released chunk by chunk below.
                    batch[index] = ""
                    records += 1
                    if chunk.count >= Self.chunkBytes || index == batch.indices.last {
                        let written = self.writeAll(chunk)
                        let released = chunk.count
                        let lost = written ? 0 : records
                        self.queue.withLock { queue in
                            queue.bytes -= released
                            queue.dropped += lost
                        }
                        chunk.removeAll(keepingCapacity: true)
                        records = 0
                    }
                }
            }
        }
    }

    /// Writes all of `bytes`, blocking this thread only. Waits (never spins) while a non-blocking descriptor is
    /// full; gives up on any other error.
    private func writeAll(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer -> Bool in
            guard let base = buffer.baseAddress else { return true }
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(self.fileDescriptor, base + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                    continue
                }
                guard written < 0 else { return false }
                switch errno {
                case EINTR:
                    continue
                case EAGAIN, EWOULDBLOCK:
                    var waiting = pollfd(fd: self.fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&waiting, 1, 1000)
                default:
                    return false
                }
            }
            return true
        }
    }
}
