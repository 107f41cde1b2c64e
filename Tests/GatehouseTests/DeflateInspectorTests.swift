import CompressNIO
import NIOCore
import Testing
@testable import Gatehouse

/// Inflating permessage-deflate messages only to count them: exact sizes, verdicts independent of chunking,
/// context takeover, and a compression bomb stopped after reading a few bytes of it.
@Suite("Deflate inspector")
struct DeflateInspectorTests {
    /// JSON-ish text like a chat or market feed sends.
    static func jsonish(_ index: Int, repeats: Int = 4) -> [UInt8] {
        var text = ""
        for item in 0..<repeats {
            text += "{\"id\":\(index * 100 + item),\"type\":\"quote\",\"symbol\":\"SYM\(index % 37)\",\"price\":\(1000 + index % 91).\(item),"
            text += "\"tags\":[\"a\",\"b\",\"c\"],\"note\":\"message number \(index) item \(item)\"}\n"
        }
        return Array(text.utf8)
    }

    static func rules(limit: UInt64, sender: DeflateParameters.Sender = .init(), masked: Bool = true) -> FrameScanner.Rules {
        FrameScanner.Rules(requireMask: masked, allowedRSV: 0b100, maxMessageBytes: limit, inflate: sender)
    }

    @Test func countsTheInflatedSizeExactly() throws {
        let deflater = try TestDeflater()
        let text = Self.jsonish(1, repeats: 40)
        let compressed = try deflater.message(text)
        #expect(compressed.count < text.count / 4)
        for (limit, expected) in [(UInt64(text.count), true), (UInt64(text.count - 1), false)] {
            let inspector = DeflateInspector(sender: .init(), limit: limit)
            #expect(inspector.startMessage() == .fine)
            let fed = inspector.feed(ByteBuffer(bytes: compressed), at: 0, count: compressed.count, mask: nil, maskOffset: 0)
            let finished = fed == .fine ? inspector.finishMessage() : fed
            #expect((finished == .fine) == expected, "limit \(limit): \(finished)")
        }
    }

    @Test func maskedPayloadIsUnmaskedIntoScratchAndLeftUntouched() throws {
        let deflater = try TestDeflater()
        let text = Self.jsonish(2, repeats: 20)
        let compressed = try deflater.message(text)
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        var masked = compressed
        for index in masked.indices { masked[index] ^= mask[index & 3] }
        let buffer = ByteBuffer(bytes: masked)
        let inspector = DeflateInspector(sender: .init(), limit: UInt64(text.count))
        #expect(inspector.startMessage() == .fine)
        // Fed in odd pieces, so the mask phase of each piece matters.
        var offset = 0
        for size in [1, 2, 3, 5, 7, 11, 13, 4096] where offset < masked.count {
            let count = min(size, masked.count - offset)
            #expect(inspector.feed(buffer, at: offset, count: count, mask: (0x37, 0xFA, 0x21, 0x3D), maskOffset: UInt64(offset)) == .fine)
            offset += count
        }
        #expect(inspector.feed(buffer, at: offset, count: masked.count - offset, mask: (0x37, 0xFA, 0x21, 0x3D), maskOffset: UInt64(offset)) == .fine)
        #expect(inspector.finishMessage() == .fine)
        #expect(Array(buffer.readableBytesView) == masked)
    }

    /// Three compressed messages (the second refers back to the first, fragmented, a ping between its fragments)
    /// and one uncompressed message, scanned whole and cut at every split point, under several limits.
    @Test func everySplitPointGivesTheSameVerdict() throws {
        let deflater = try TestDeflater()
        let texts = [Self.jsonish(1, repeats: 3), Self.jsonish(1, repeats: 6), Self.jsonish(2, repeats: 2)]
        let first = try deflater.message(texts[0])
        let second = try deflater.message(texts[1])
        let third = try deflater.message(texts[2])
        let cut = second.count / 2
        var stream: [UInt8] = []
        stream += TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: first)
        stream += TestFrame.encode(fin: false, rsv: 0b100, opcode: TestFrame.text, payload: Array(second[..<cut]))
        stream += TestFrame.encode(opcode: TestFrame.ping, payload: Array("p".utf8))
        stream += TestFrame.encode(opcode: TestFrame.continuation, payload: Array(second[cut...]))
        stream += TestFrame.encode(opcode: TestFrame.binary, payload: [0xFF, 0xFE, 0xFD])
        stream += TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: third)
        let largest = UInt64(texts.map(\.count).max() ?? 0)
        let cases: [(UInt64, String?)] = [
            (largest, nil),
            (largest - 1, "1009 message larger than \(largest - 1) bytes inflated"),
            (UInt64(texts[0].count), "1009 message larger than \(texts[0].count) bytes inflated"),
        ]
        for (limit, expected) in cases {
            let rules = Self.rules(limit: limit)
            let whole = FrameScannerPropertyTests.scan(stream, chunks: [], rules: rules, holdPongs: false)
            #expect(whole.violation == expected, "limit \(limit)")
            if expected == nil { #expect(whole.forwarded == stream) }
            var splits = (1..<stream.count).map { [$0, stream.count] }
            splits.append([1])
            for chunks in splits {
                let split = FrameScannerPropertyTests.scan(stream, chunks: chunks, rules: rules, holdPongs: false)
                #expect(split.violation == whole.violation, "limit \(limit) chunks \(chunks)")
                #expect(split.frames == whole.frames && split.messages == whole.messages, "limit \(limit) chunks \(chunks)")
                if expected == nil {
                    #expect(split.forwarded == whole.forwarded, "limit \(limit) chunks \(chunks)")
                } else {
                    // The frame is cut where the inflater stopped: a prefix of the stream, give or take the byte
                    // zlib had read ahead (that depends on the chunking, the verdict does not).
                    #expect(split.forwarded == Array(stream.prefix(split.forwarded.count)), "limit \(limit) chunks \(chunks)")
                    #expect(abs(split.forwarded.count - whole.forwarded.count) <= 2, "limit \(limit) chunks \(chunks): \(split.forwarded.count) vs \(whole.forwarded.count)")
                }
            }
        }
    }

    @Test func aCompressionBombIsStoppedAfterAFewBytes() throws {
        // 64 MiB of zeros: about 64 KiB compressed, one frame.
        let deflater = try TestDeflater()
        let compressed = try deflater.message([[UInt8]](repeating: [UInt8](repeating: 0, count: 1 << 20), count: 64))
        #expect(compressed.count < 100_000)
        let frame = TestFrame.encode(rsv: 0b100, opcode: TestFrame.binary, payload: compressed)
        var scanner = FrameScanner(rules: Self.rules(limit: 1 << 20))
        var forwarded = 0
        var violation: String?
        var offset = 0
        reading: while offset < frame.count {
            let size = min(16 << 10, frame.count - offset)
            var buffer = ByteBuffer(bytes: frame[offset..<(offset + size)])
            offset += size
            while true {
                switch scanner.next(&buffer) {
                case .forward(let run): forwarded += run.readableBytes
                case .violation(let code, let reason):
                    violation = "\(code) \(reason)"
                    break reading
                case .control: Issue.record("no control frame was sent")
                case .needMore: continue reading
                }
            }
        }
        #expect(violation == "1009 message larger than 1048576 bytes inflated")
        // Only what inflates to the limit (about 1 KiB compressed) went on; the frame was cut, so no close frame may
        // be inserted into it.
        #expect(forwarded > 0 && forwarded < 4096, "\(forwarded) bytes forwarded")
        #expect(!scanner.forwardedWholeFrames)
    }

    @Test func contextTakeoverHoldsAcrossAThousandMessages() throws {
        for sender in [DeflateParameters.Sender(), .init(windowBits: 10), .init(windowBits: 15, noContextTakeover: true)] {
            let deflater = try TestDeflater(windowBits: Int32(sender.windowBits), noContextTakeover: sender.noContextTakeover)
            var stream: [UInt8] = []
            var largest = 0
            for index in 0..<1000 {
                let text = Self.jsonish(index % 50, repeats: 1 + index % 5)
                largest = max(largest, text.count)
                stream += TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: try deflater.message(text), mask: nil)
            }
            let fits = FrameScannerPropertyTests.scan(
                stream, chunks: [1000, 7, 333], rules: Self.rules(limit: UInt64(largest), sender: sender, masked: false), holdPongs: false
            )
            #expect(fits.violation == nil, "\(sender)")
            #expect(fits.messages == 1000 && fits.forwarded == stream)
            let tooSmall = FrameScannerPropertyTests.scan(
                stream, chunks: [1000, 7, 333], rules: Self.rules(limit: UInt64(largest - 1), sender: sender, masked: false), holdPongs: false
            )
            #expect(tooSmall.violation == "1009 message larger than \(largest - 1) bytes inflated")
        }
    }

    @Test func theNegotiatedContextTakeoverIsHonoured() throws {
        // A sender that keeps its history, inspected as if it did not: the second message refers back and cannot be
        // inflated on its own, so the parameters really are applied (and corrupt data is refused with 1007).
        let deflater = try TestDeflater()
        var stream: [UInt8] = []
        for _ in 0..<3 { stream += TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: try deflater.message(Self.jsonish(7))) }
        let honoured = FrameScannerPropertyTests.scan(stream, chunks: [], rules: Self.rules(limit: 1 << 20), holdPongs: false)
        #expect(honoured.violation == nil)
        let wrong = FrameScannerPropertyTests.scan(
            stream, chunks: [], rules: Self.rules(limit: 1 << 20, sender: .init(noContextTakeover: true)), holdPongs: false
        )
        #expect(wrong.violation == "1007 invalid compressed data")
        #expect(wrong.messages == 2)
    }

    @Test func onlyCompressedMessagesAreInflated() {
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0x07, 0x12, 0x99]
        let plain = TestFrame.encode(opcode: TestFrame.binary, payload: garbage)
        #expect(FrameScannerPropertyTests.scan(plain, chunks: [], rules: Self.rules(limit: 1000), holdPongs: false).violation == nil)
        let compressed = TestFrame.encode(rsv: 0b100, opcode: TestFrame.binary, payload: garbage)
        #expect(FrameScannerPropertyTests.scan(compressed, chunks: [], rules: Self.rules(limit: 1000), holdPongs: false).violation == "1007 invalid compressed data")
        // Without an inflate rule (no limit, or passthrough) the same frame passes as it always did.
        let passthrough = FrameScanner.Rules(requireMask: true, allowedRSV: 0b100, maxMessageBytes: 1000)
        #expect(FrameScannerPropertyTests.scan(compressed, chunks: [], rules: passthrough, holdPongs: false).violation == nil)
    }

    @Test func aSenderEndingItsStreamWithBFINALStartsANewOne() throws {
        // Some senders end each message with a final block (RFC 7692 §7.2.3.4) instead of a sync flush.
        var stream: [UInt8] = []
        for index in 0..<3 {
            let compressor = try ZlibCompressor(algorithm: .deflate)
            var input = ByteBuffer(bytes: Self.jsonish(index, repeats: 20))
            var output = ByteBufferAllocator().buffer(capacity: compressor.maxSize(from: input))
            try? compressor.deflate(from: &input, to: &output, flush: .finish)
            stream += TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: Array(output.readableBytesView))
        }
        let outcome = FrameScannerPropertyTests.scan(stream, chunks: [5], rules: Self.rules(limit: 1 << 20), holdPongs: false)
        #expect(outcome.violation == nil && outcome.messages == 3)
        let tight = FrameScannerPropertyTests.scan(stream, chunks: [5], rules: Self.rules(limit: 1000), holdPongs: false)
        #expect(tight.violation == "1009 message larger than 1000 bytes inflated")
    }

    @Test func negotiatedParametersAreParsed() {
        #expect(DeflateParameters(negotiated: ["x-other"]) == nil)
        #expect(DeflateParameters(negotiated: []) == nil)
        #expect(DeflateParameters(negotiated: ["permessage-deflate"]) == DeflateParameters())
        let full = DeflateParameters(negotiated: [
            "x-other; a=1",
            "Permessage-Deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=\"12\"; client_max_window_bits = 10",
        ])
        #expect(full == DeflateParameters(client: .init(windowBits: 10, noContextTakeover: true), server: .init(windowBits: 12, noContextTakeover: true)))
        // Invalid window sizes leave the permissive 15; 8 is inflated as 9 (zlib never deflates with 8).
        #expect(DeflateParameters(negotiated: ["permessage-deflate; client_max_window_bits=99"])?.client.windowBits == 15)
        #expect(DeflateParameters(negotiated: ["permessage-deflate; client_max_window_bits"])?.client.windowBits == 15)
        #expect(DeflateParameters(negotiated: ["permessage-deflate; server_max_window_bits=8"])?.server.windowBits == 9)
    }

    @Test func relaySettingsInflateOnlyWhenThereIsALimitToEnforce() {
        var limits = LimitsConfig()
        let negotiated: [Substring] = ["permessage-deflate; server_no_context_takeover; client_max_window_bits=11"]
        #expect(RelaySettings(limits: limits, negotiatedExtensions: negotiated, expiresAt: nil).clientRules.inflate == nil)
        limits.maxMessageBytes = 1 << 20
        let inspect = RelaySettings(limits: limits, negotiatedExtensions: negotiated, expiresAt: nil)
        #expect(inspect.clientRules.inflate == DeflateParameters.Sender(windowBits: 11, noContextTakeover: false))
        #expect(inspect.backendRules.inflate == DeflateParameters.Sender(windowBits: 15, noContextTakeover: true))
        #expect(RelaySettings(limits: limits, negotiatedExtensions: negotiated, expiresAt: nil, compression: .strip).backendRules.inflate != nil)
        let passthrough = RelaySettings(limits: limits, negotiatedExtensions: negotiated, expiresAt: nil, compression: .passthrough)
        #expect(passthrough.clientRules.inflate == nil && passthrough.backendRules.inflate == nil)
        #expect(RelaySettings(limits: limits, negotiatedExtensions: [], expiresAt: nil).clientRules.inflate == nil)
    }
}
