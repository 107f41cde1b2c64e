import NIOCore
import Testing
@testable import Gatehouse

/// A small deterministic generator, so a failing case can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { self.state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The scanner's verdicts must not depend on how the stream is cut into reads: every stream, valid or not, is
/// scanned whole and in random chunkings, and the outputs compared.
@Suite("Frame scanner properties")
struct FrameScannerPropertyTests {
    struct Outcome: Equatable {
        var forwarded: [UInt8] = []
        var controls: [[UInt8]] = []
        var violation: String?
        var frames = 0
        var messages = 0
    }

    static func scan(_ stream: [UInt8], chunks: [Int], rules: FrameScanner.Rules, holdPongs: Bool) -> Outcome {
        var scanner = FrameScanner(rules: rules)
        scanner.holdPongs = holdPongs
        var outcome = Outcome()
        var offset = 0
        var chunkIndex = 0
        while offset < stream.count && outcome.violation == nil {
            let size = min(chunks.isEmpty ? stream.count : chunks[chunkIndex % chunks.count], stream.count - offset)
            chunkIndex += 1
            var buffer = ByteBuffer(bytes: stream[offset..<(offset + size)])
            offset += size
            events: while true {
                switch scanner.next(&buffer) {
                case .forward(let run): outcome.forwarded += Array(run.readableBytesView)
                case .control(let opcode, let frame, let payload):
                    outcome.controls.append([opcode] + payload)
                    outcome.forwarded += Array("<held \(frame.readableBytes)>".utf8)
                case .violation(let code, let reason):
                    outcome.violation = "\(code) \(reason)"
                    break events
                case .needMore: break events
                }
            }
        }
        outcome.frames = scanner.frames
        outcome.messages = scanner.messages
        return outcome
    }

    /// A random stream of client frames: messages (some fragmented), pings, pongs, a close, and sometimes one
    /// invalid frame somewhere.
    static func randomStream(_ random: inout SeededGenerator, maxFrame: Int) -> [UInt8] {
        var stream: [UInt8] = []
        let messages = Int.random(in: 1...6, using: &random)
        for _ in 0..<messages {
            let fragments = Int.random(in: 1...3, using: &random)
            for index in 0..<fragments {
                let size = Int.random(in: 0...(Bool.random(using: &random) ? 130 : 3000), using: &random)
                let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0) }
                let opcode = index == 0 ? (Bool.random(using: &random) ? TestFrame.text : TestFrame.binary) : TestFrame.continuation
                stream += TestFrame.encode(fin: index == fragments - 1, opcode: opcode, payload: payload)
                if Int.random(in: 0..<4, using: &random) == 0 {
                    stream += TestFrame.encode(opcode: Bool.random(using: &random) ? TestFrame.ping : TestFrame.pong, payload: Array("p\(index)".utf8))
                }
            }
        }
        if Int.random(in: 0..<3, using: &random) == 0 {
            let invalid: [[UInt8]] = [
                TestFrame.encode(opcode: 0x3, payload: [1]),
                TestFrame.encode(opcode: TestFrame.text, payload: [1], mask: nil),
                TestFrame.encode(fin: false, opcode: TestFrame.ping, payload: []),
                TestFrame.encode(opcode: TestFrame.continuation, payload: [1]),
                TestFrame.encode(opcode: TestFrame.binary, payload: [UInt8](repeating: 0, count: maxFrame + 1)),
                [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            ]
            stream += invalid[Int.random(in: 0..<invalid.count, using: &random)]
        }
        stream += TestFrame.encode(opcode: TestFrame.close, payload: TestFrame.closePayload(1000, "bye"))
        return stream
    }

    @Test func verdictsDoNotDependOnChunking() {
        let rules = FrameScanner.Rules(requireMask: true, allowedRSV: 0, maxFrameBytes: 2500, maxMessageBytes: 6000)
        var violations = 0
        for seed in 0..<120 {
            var random = SeededGenerator(seed: UInt64(seed))
            let stream = Self.randomStream(&random, maxFrame: 2500)
            let holdPongs = seed % 2 == 0
            let whole = Self.scan(stream, chunks: [], rules: rules, holdPongs: holdPongs)
            if whole.violation != nil { violations += 1 }
            for _ in 0..<4 {
                let chunks = (0..<8).map { _ in Int.random(in: 1...(Bool.random(using: &random) ? 16 : 9000), using: &random) }
                let split = Self.scan(stream, chunks: chunks, rules: rules, holdPongs: holdPongs)
                #expect(split == whole, "seed \(seed) chunks \(chunks)")
            }
            if seed % 6 == 0 {
                let bytewise = Self.scan(stream, chunks: [1], rules: rules, holdPongs: holdPongs)
                #expect(bytewise == whole, "seed \(seed) one byte at a time")
            }
        }
        // Both kinds of stream were exercised.
        #expect(violations > 20 && violations < 100, "\(violations) of 120 streams had a violation")
    }

    /// The same with permessage-deflate messages inflated as they pass: random compressible messages (context
    /// takeover, some fragmented, pings between fragments, sometimes corrupt data), random limits.
    @Test func inflatedVerdictsDoNotDependOnChunking() throws {
        var verdicts: Set<String> = []
        for seed in 0..<40 {
            var random = SeededGenerator(seed: UInt64(1000 + seed))
            let deflater = try TestDeflater()
            var stream: [UInt8] = []
            for index in 0..<Int.random(in: 1...5, using: &random) {
                let text = DeflateInspectorTests.jsonish(Int.random(in: 0...9, using: &random), repeats: Int.random(in: 1...12, using: &random))
                var payload = try deflater.message(text)
                if Int.random(in: 0..<12, using: &random) == 0 { payload = [0xFF, 0xFF] + payload }
                let cut = Int.random(in: 0...payload.count, using: &random)
                if Bool.random(using: &random) {
                    stream += TestFrame.encode(rsv: 0b100, opcode: TestFrame.text, payload: payload)
                } else {
                    stream += TestFrame.encode(fin: false, rsv: 0b100, opcode: TestFrame.text, payload: Array(payload[..<cut]))
                    stream += TestFrame.encode(opcode: TestFrame.ping, payload: Array("p\(index)".utf8))
                    stream += TestFrame.encode(opcode: TestFrame.continuation, payload: Array(payload[cut...]))
                }
            }
            let rules = FrameScanner.Rules(
                requireMask: true, allowedRSV: 0b100, maxMessageBytes: UInt64(Int.random(in: 300...3000, using: &random)),
                inflate: DeflateParameters.Sender()
            )
            let whole = Self.scan(stream, chunks: [], rules: rules, holdPongs: false)
            verdicts.insert(whole.violation.map { String($0.prefix(4)) } ?? "none")
            for _ in 0..<6 {
                let chunks = (0..<8).map { _ in Int.random(in: 1...(Bool.random(using: &random) ? 9 : 700), using: &random) }
                let split = Self.scan(stream, chunks: chunks, rules: rules, holdPongs: false)
                #expect(split.violation == whole.violation && split.frames == whole.frames && split.messages == whole.messages, "seed \(seed) chunks \(chunks)")
                if whole.violation == nil {
                    #expect(split.forwarded == whole.forwarded, "seed \(seed) chunks \(chunks)")
                } else {
                    // A compressed frame is cut where the inflater stopped, give or take zlib's read-ahead.
                    #expect(split.forwarded == Array(stream.prefix(split.forwarded.count)), "seed \(seed)")
                    #expect(abs(split.forwarded.count - whole.forwarded.count) <= 2, "seed \(seed) chunks \(chunks)")
                }
            }
        }
        // Streams that pass, streams too big once inflated and corrupt ones were all exercised.
        #expect(verdicts == ["none", "1009", "1007"], "\(verdicts)")
    }

    @Test func forwardedBytesAreTheInputWhenNothingIsHeld() {
        let rules = FrameScanner.Rules(requireMask: true, allowedRSV: 0)
        var random = SeededGenerator(seed: 42)
        var stream: [UInt8] = []
        for _ in 0..<50 {
            stream += TestFrame.encode(opcode: TestFrame.binary, payload: (0..<Int.random(in: 0...3000, using: &random)).map { UInt8(truncatingIfNeeded: $0) })
        }
        let outcome = Self.scan(stream, chunks: [7, 1, 4096, 13], rules: rules, holdPongs: false)
        #expect(outcome.forwarded == stream)
        #expect(outcome.violation == nil)
        #expect(outcome.frames == 50 && outcome.messages == 50)
    }

    @Test func headerParsing() {
        #expect(FrameHeader.parse(ByteBuffer(bytes: [0x81]), at: 0) == .incomplete)
        #expect(FrameHeader.parse(ByteBuffer(bytes: [0x81, 0xFE, 0x01]), at: 0) == .incomplete)
        #expect(FrameHeader.parse(ByteBuffer(bytes: [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]), at: 0) == .invalidLength)
        guard case .header(let header) = FrameHeader.parse(ByteBuffer(bytes: [0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4]), at: 0) else {
            Issue.record("no header")
            return
        }
        #expect(header.payloadLength == 256)
        #expect(header.headerLength == 8)
        #expect(header.masked)
        #expect(header.maskKey == (1, 2, 3, 4))
    }
}
