import Foundation
import GatehouseCluster
import NIOCore

/// Messages the proxy itself sends to one client (the admin API's pushes and channel broadcasts), already framed,
/// waiting for the backend's stream toward the client to reach a message boundary.
///
/// Bounded per connection: at most ``maxMessages`` messages and ``maxPayloadBytes`` of payload. A push that would
/// pass either bound is refused (the admin API answers 429 for that connection), never queued in part.
struct PushQueue {
    /// Messages waiting per connection: enough to ride out one long backend message, small enough that a client
    /// that stopped reading costs little.
    static let maxMessages = 64
    /// Payload bytes waiting per connection (a push body is at most 64 KiB, so 16 of the largest fit).
    static let maxPayloadBytes = 1 << 20

    private var frames: [(frame: ByteBuffer, payloadBytes: Int)] = []
    /// Index of the next frame to hand out (the array is compacted when emptied).
    private var head = 0
    /// Payload bytes of the frames not handed out yet.
    private(set) var payloadBytes = 0

    var isEmpty: Bool { self.head == self.frames.count }
    var count: Int { self.frames.count - self.head }

    /// Queues `message` as one frame; false when a bound would be passed.
    mutating func append(_ message: PushMessage) -> Bool {
        let size = message.body.count
        guard self.count < Self.maxMessages, size <= Self.maxPayloadBytes - self.payloadBytes else { return false }
        self.frames.append((Self.frame(message, allocator: ByteBufferAllocator()), size))
        self.payloadBytes += size
        return true
    }

    /// The oldest queued frame, removed.
    mutating func popFirst() -> ByteBuffer? {
        guard self.head < self.frames.count else { return nil }
        let (frame, size) = self.frames[self.head]
        self.head += 1
        self.payloadBytes -= size
        if self.head == self.frames.count {
            self.frames.removeAll(keepingCapacity: true)
            self.head = 0
        }
        return frame
    }

    /// Drops everything queued (the connection is closing).
    mutating func removeAll() {
        self.frames.removeAll()
        self.head = 0
        self.payloadBytes = 0
    }

    /// One unmasked, unfragmented frame (FIN, opcode text or binary, RSV bits 0). Legal with permessage-deflate
    /// negotiated too: RSV1 marks compressed messages one by one, and this one is not.
    static func frame(_ message: PushMessage, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = message.body.count
        var buffer = allocator.buffer(capacity: 10 + length)
        buffer.writeInteger(0x80 | (message.text ? FrameOpcode.text : FrameOpcode.binary))
        if length < 126 {
            buffer.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
        buffer.writeBytes(message.body)
        return buffer
    }
}

/// What happened to a message pushed to one connection.
enum PushOutcome: Equatable, Sendable {
    /// Queued (and written at once when the stream toward the client is at a message boundary).
    case queued
    /// The connection's queue is at its bound.
    case full
    /// The client's output is no longer open (a close started): nothing more is sent to it.
    case closed
}
