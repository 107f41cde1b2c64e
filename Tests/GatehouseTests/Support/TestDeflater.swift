import CompressNIO
import NIOCore

/// A permessage-deflate sender (RFC 7692 §7.2.1): one raw deflate stream, each message sync-flushed and its
/// 00 00 ff ff tail removed; with no context takeover the stream restarts after every message.
final class TestDeflater {
    private let compressor: ZlibCompressor
    private let noContextTakeover: Bool

    init(windowBits: Int32 = 15, noContextTakeover: Bool = false) throws {
        self.compressor = try ZlibCompressor(algorithm: .deflate, configuration: ZlibConfiguration(windowSize: windowBits))
        self.noContextTakeover = noContextTakeover
    }

    /// The compressed payload of one message made of `pieces` (fed one after the other, so a huge message never
    /// sits in memory whole).
    func message(_ pieces: [[UInt8]]) throws -> [UInt8] {
        var compressed: [UInt8] = []
        for (index, piece) in pieces.enumerated() {
            var input = ByteBuffer(bytes: piece)
            var output = ByteBufferAllocator().buffer(capacity: self.compressor.maxSize(from: input))
            try self.compressor.deflate(from: &input, to: &output, flush: index == pieces.count - 1 ? .sync : .no)
            compressed += output.readableBytesView
        }
        if pieces.isEmpty {
            var input = ByteBuffer()
            var output = ByteBufferAllocator().buffer(capacity: 64)
            try self.compressor.deflate(from: &input, to: &output, flush: .sync)
            compressed += output.readableBytesView
        }
        guard compressed.suffix(4) == [0x00, 0x00, 0xFF, 0xFF] else { throw TestError("no sync flush tail") }
        if self.noContextTakeover { try self.compressor.reset() }
        return Array(compressed.dropLast(4))
    }

    func message(_ bytes: [UInt8]) throws -> [UInt8] { try self.message([bytes]) }
}
