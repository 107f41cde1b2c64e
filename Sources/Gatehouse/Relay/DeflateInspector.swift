import CompressNIO
import NIOCore

/// Counts the inflated size of the compressed (RSV1) messages of one direction of a permessage-deflate session
/// (RFC 7692), so that `max_message_bytes` bounds what the receiver will inflate, not only what crossed the wire.
///
/// Nothing inflated is kept: output goes to a fixed scratch buffer and is only counted, and inflating stops as soon
/// as a message passes the limit (the rest is never inflated). Memory is zlib's window (2^windowBits bytes), its
/// state and two small scratch buffers, whatever the peer sends. The inflater is made at the first compressed
/// message, so a direction that never compresses costs nothing.
///
/// A class: the inflater is a reference (a zlib stream) and must never be used through two copies; and a scanner
/// that never inflates holds one pointer, not the inspector's state.
final class DeflateInspector {
    /// What feeding compressed bytes found.
    enum Outcome: Equatable {
        case fine
        /// The message inflates past the limit; `accepted` bytes of the input were read up to that point.
        case overLimit(accepted: Int)
        /// The bytes are not valid deflate data; `accepted` bytes of the input were read before the error.
        case corrupt(accepted: Int)
    }

    /// Compressed bytes unmasked (or copied) and inflated at a time.
    static let inputChunk = 4 << 10
    /// Inflated bytes produced, counted and dropped at a time.
    static let outputChunk = 16 << 10
    /// What RFC 7692 §7.2.2 appends to every message before inflating its end.
    private static let messageTail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    /// How the sender of this direction compresses.
    let sender: DeflateParameters.Sender
    /// Largest inflated message.
    let limit: UInt64
    /// Inflated bytes of the current message so far.
    private(set) var messageBytes: UInt64 = 0
    private var inflater: ZlibDecompressor?
    private var input = ByteBuffer()
    private var output = ByteBuffer()
    /// The sender ended its deflate stream (a block with BFINAL) during this message: whatever follows is a new
    /// stream, and the next message starts one too.
    private var streamEnded = false

    init(sender: DeflateParameters.Sender, limit: UInt64) {
        self.sender = sender
        self.limit = limit
    }

    /// Starts a compressed message.
    func startMessage() -> Outcome {
        self.messageBytes = 0
        self.streamEnded = false
        guard self.inflater == nil else { return .fine }
        do {
            self.inflater = try ZlibDecompressor(algorithm: .deflate, windowSize: Int32(self.sender.windowBits))
        } catch {
            return .corrupt(accepted: 0)
        }
        self.input = ByteBufferAllocator().buffer(capacity: Self.inputChunk)
        self.output = ByteBufferAllocator().buffer(capacity: Self.outputChunk)
        return .fine
    }

    /// Inflates `count` payload bytes at `index` in `buffer` (not moving its indices; the bytes are copied, never
    /// changed). `mask` is the frame's masking key and `maskOffset` the position of the first byte in the frame's
    /// payload.
    func feed(
        _ buffer: ByteBuffer, at index: Int, count: Int, mask: (UInt8, UInt8, UInt8, UInt8)?, maskOffset: UInt64
    ) -> Outcome {
        var done = 0
        while done < count {
            let piece = min(Self.inputChunk, count - done)
            self.input.clear()
            let start = index - buffer.readerIndex + done
            let phase = Int((maskOffset &+ UInt64(done)) & 3)
            _ = buffer.withUnsafeReadableBytes { source in
                self.input.writeWithUnsafeMutableBytes(minimumWritableBytes: piece) { target in
                    guard let from = source.baseAddress, let to = target.baseAddress else { return 0 }
                    to.copyMemory(from: from + start, byteCount: piece)
                    if let mask { Self.unmask(UnsafeMutableRawBufferPointer(rebasing: target[..<piece]), key: mask, phase: phase) }
                    return piece
                }
            }
            switch self.inflateInput() {
            case .fine: break
            case .overLimit(let accepted): return .overLimit(accepted: done + accepted)
            case .corrupt(let accepted): return .corrupt(accepted: done + accepted)
            }
            done += piece
        }
        return .fine
    }

    /// Ends the current message: inflates the tail RFC 7692 appends and drops the history when the sender does
    /// not carry it over.
    func finishMessage() -> Outcome {
        self.input.clear()
        self.input.writeBytes(Self.messageTail)
        let outcome = self.inflateInput()
        if outcome == .fine && (self.sender.noContextTakeover || self.streamEnded) {
            do { try self.inflater?.reset() } catch { return .corrupt(accepted: 0) }
        }
        self.messageBytes = 0
        self.streamEnded = false
        return outcome
    }

    /// XORs the masking key over `bytes`, whose first byte is at `phase` (0 to 3) in the key's cycle; eight bytes at a
    /// time, as this runs over every compressed byte a client sends.
    private static func unmask(_ bytes: UnsafeMutableRawBufferPointer, key: (UInt8, UInt8, UInt8, UInt8), phase: Int) {
        var pattern: UInt64 = 0
        withUnsafeBytes(of: key) { keyBytes in
            withUnsafeMutableBytes(of: &pattern) { patternBytes in
                for index in 0..<8 { patternBytes[index] = keyBytes[(phase + index) & 3] }
            }
        }
        let words = bytes.count / 8
        for index in 0..<words {
            let offset = index * 8
            let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) ^ pattern
            bytes.storeBytes(of: value, toByteOffset: offset, as: UInt64.self)
        }
        withUnsafeBytes(of: key) { keyBytes in
            for index in (words * 8)..<bytes.count { bytes[index] ^= keyBytes[(phase + index) & 3] }
        }
    }

    /// Inflates all of `input`, counting and dropping the output; `accepted` counts input bytes read.
    private func inflateInput() -> Outcome {
        guard let inflater = self.inflater else { return .corrupt(accepted: 0) }
        let first = self.input.readerIndex
        var restarted = false
        while true {
            let capacity = self.output.capacity
            let budget = self.limit - self.messageBytes
            // One byte past the budget is enough to know the message is too big: inflate no further than that.
            let room = budget >= UInt64(capacity) ? capacity : Int(budget) + 1
            self.output.clear()
            self.output.moveWriterIndex(to: capacity - room)
            self.output.moveReaderIndex(to: capacity - room)
            let readBefore = self.input.readerIndex
            var outputFull = false
            let wasRestarted = restarted
            restarted = false
            do {
                try inflater.inflate(from: &self.input, to: &self.output)
                if self.input.readableBytes > 0 {
                    // zlib stops at the end of a deflate stream: what follows starts a new one (a fresh inflater
                    // always reads something or fails, so this cannot repeat without progress).
                    if wasRestarted && self.input.readerIndex == readBefore { return .corrupt(accepted: readBefore - first) }
                    self.streamEnded = true
                    restarted = true
                    try inflater.reset()
                }
            } catch let error as CompressNIOError where error == .bufferOverflow {
                outputFull = true
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                // Everything given was used; the rest of the message will follow.
            } catch {
                return .corrupt(accepted: self.input.readerIndex - first)
            }
            let produced = self.output.readableBytes
            self.messageBytes &+= UInt64(produced)
            if self.messageBytes > self.limit { return .overLimit(accepted: self.input.readerIndex - first) }
            if produced == 0 && self.input.readerIndex == readBefore && !restarted && (outputFull || self.input.readableBytes > 0) {
                // No progress either way: never loop on it.
                return .corrupt(accepted: self.input.readerIndex - first)
            }
            if !outputFull && self.input.readableBytes == 0 { return .fine }
        }
    }
}
