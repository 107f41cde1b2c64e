import NIOCore

/// Reads the frame headers of one direction of a relayed WebSocket and splits its bytes into runs that may be
/// forwarded untouched and the few frames the proxy must look at.
///
/// Payloads are never changed: a run is a slice of the bytes read. Only a header cut by a read boundary (at most 13
/// bytes) and a held control frame (at most 139 bytes) are copied, and, when permessage-deflate messages are
/// inspected, compressed payload bytes in small pieces (unmasked into a scratch buffer to be inflated and counted).
/// Verdicts do not depend on how the stream is chunked (where a compressed frame is cut on a violation may, by the
/// byte or two zlib reads ahead).
struct FrameScanner {
    /// What this direction must obey.
    struct Rules {
        /// Frames must be masked (client to backend) or must not be (backend to client).
        var requireMask: Bool
        /// RSV bits allowed on the first frame of a data message (RSV1 when permessage-deflate was negotiated).
        var allowedRSV: UInt8
        /// Largest frame payload.
        var maxFrameBytes: UInt64 = .max
        /// Largest message, summed over its fragments.
        var maxMessageBytes: UInt64 = .max
        /// Data messages per second, with a burst of one second's worth; nil for no limit.
        var messagesPerSecond: Int?
        /// How the sender compresses, when its compressed (RSV1) messages must be inflated to count their size
        /// against `maxMessageBytes` (permessage-deflate negotiated and `compression: inspect`); nil counts wire
        /// bytes only.
        var inflate: DeflateParameters.Sender?
    }

    /// The next thing to do with the bytes of this direction.
    enum Event {
        /// Write these bytes to the other side as they are.
        case forward(ByteBuffer)
        /// A complete control frame held back for the proxy: its original bytes and its unmasked payload.
        case control(opcode: UInt8, frame: ByteBuffer, payload: [UInt8])
        /// The peer broke a rule. Nothing of the offending frame was forwarded, except when a compressed message
        /// passed a limit or turned out corrupt while inflated: then its frame was cut where the inflater stopped
        /// (``forwardedWholeFrames`` stays false).
        case violation(code: UInt16, reason: String)
        /// Every byte given was used; wait for more.
        case needMore
    }

    private enum State {
        case header
        case payload(remaining: UInt64)
        case holding(FrameHeader)
        /// A violation was found; `midFrame` when part of the offending frame was forwarded.
        case failed(midFrame: Bool)
    }

    var rules: Rules
    /// Hold pongs back (a proxy ping is waiting for its answer).
    var holdPongs = false
    private var state = State.header
    /// Bytes of a header cut by a read boundary, or of a held control frame.
    private var stash: ByteBuffer?
    private var inMessage = false
    private var messageBytes: UInt64 = 0
    private var tokens: Double = 0
    private var refilled: NIODeadline = .uptimeNanoseconds(0)
    /// Inflates compressed messages; made at the first one.
    private var inspector: DeflateInspector?
    /// The current data message is compressed and inflated as it passes.
    private var inflatingMessage = false
    /// Its inflater has not been told the message started.
    private var messageStarting = false
    /// The data frame whose payload is passing, when that payload is inflated.
    private var inflatedFrame: FrameHeader?
    /// A violation found while forwarding the run that precedes it.
    private var pendingViolation: (code: UInt16, reason: String)?

    /// Frames seen.
    private(set) var frames = 0
    /// Data messages started.
    private(set) var messages = 0
    /// Data frames seen (what idle detection watches).
    private(set) var dataFrames = 0

    init(rules: Rules) {
        self.rules = rules
        self.tokens = Double(rules.messagesPerSecond ?? 0)
    }

    /// Whether everything forwarded so far ends on a frame boundary, so the proxy may insert a frame of its own.
    var forwardedWholeFrames: Bool {
        switch self.state {
        case .payload: return false
        case .failed(let midFrame): return !midFrame
        case .header, .holding: return true
        }
    }

    /// Whether a data message is in progress (a frame of its own may still be inserted between fragments).
    var isInsideMessage: Bool { self.inMessage }

    mutating func next(_ buffer: inout ByteBuffer) -> Event {
        switch self.state {
        case .failed:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            if let violation = self.pendingViolation {
                self.pendingViolation = nil
                return .violation(code: violation.code, reason: violation.reason)
            }
            return .needMore
        case .holding(let header):
            return self.continueHolding(header, &buffer)
        case .header where self.stash != nil:
            return self.continueHeader(&buffer)
        case .header, .payload:
            return self.scanRun(&buffer)
        }
    }

    // MARK: Runs

    private mutating func scanRun(_ buffer: inout ByteBuffer) -> Event {
        let start = buffer.readerIndex
        let end = buffer.writerIndex
        var cursor = start
        scanning: while cursor < end {
            switch self.state {
            case .payload(let remaining):
                let take = min(UInt64(end - cursor), remaining)
                if let cut = self.inflate(buffer, at: cursor, count: Int(take), remainingAfter: remaining - take) {
                    return self.stop(at: cursor + cut, runStart: start, &buffer)
                }
                cursor += Int(take)
                self.state = take == remaining ? .header : .payload(remaining: remaining - take)
            case .header:
                let header: FrameHeader
                switch FrameHeader.parse(buffer, at: cursor) {
                case .incomplete:
                    if cursor > start { break scanning }
                    var stash = ByteBufferAllocator().buffer(capacity: 14)
                    var rest = buffer
                    stash.writeBuffer(&rest)
                    buffer.moveReaderIndex(to: end)
                    self.stash = stash
                    return .needMore
                case .invalidLength:
                    if cursor > start { break scanning }
                    return self.fail(CloseCode.protocolError, "invalid frame length", &buffer)
                case .header(let parsed):
                    header = parsed
                }
                if let violation = self.check(header) {
                    if cursor > start { break scanning }
                    return self.fail(violation.code, violation.reason, &buffer)
                }
                if self.mustHold(header) {
                    if cursor > start { break scanning }
                    self.account(header)
                    self.state = .holding(header)
                    self.stash = ByteBufferAllocator().buffer(capacity: header.headerLength + Int(header.payloadLength))
                    return self.continueHolding(header, &buffer)
                }
                self.account(header)
                cursor += header.headerLength
                let take = min(UInt64(end - cursor), header.payloadLength)
                if let cut = self.inflate(buffer, at: cursor, count: Int(take), remainingAfter: header.payloadLength - take) {
                    return self.stop(at: cursor + cut, runStart: start, &buffer)
                }
                cursor += Int(take)
                self.state = take == header.payloadLength ? .header : .payload(remaining: header.payloadLength - take)
            case .holding, .failed:
                break scanning
            }
        }
        guard cursor > start, let run = buffer.readSlice(length: cursor - start) else { return .needMore }
        return .forward(run)
    }

    /// Completes a header cut by the previous read, taking only its own bytes from `buffer`.
    private mutating func continueHeader(_ buffer: inout ByteBuffer) -> Event {
        guard var stash = self.stash else { return .needMore }
        var probe = stash
        let extra = min(14 - stash.readableBytes, buffer.readableBytes)
        if let bytes = buffer.getSlice(at: buffer.readerIndex, length: extra) {
            var bytes = bytes
            probe.writeBuffer(&bytes)
        }
        switch FrameHeader.parse(probe, at: probe.readerIndex) {
        case .incomplete:
            var rest = buffer
            stash.writeBuffer(&rest)
            buffer.moveReaderIndex(to: buffer.writerIndex)
            self.stash = stash
            return .needMore
        case .invalidLength:
            self.stash = nil
            return self.fail(CloseCode.protocolError, "invalid frame length", &buffer)
        case .header(let header):
            let needed = header.headerLength - stash.readableBytes
            if var own = buffer.readSlice(length: needed) { stash.writeBuffer(&own) }
            self.stash = nil
            if let violation = self.check(header) {
                return self.fail(violation.code, violation.reason, &buffer)
            }
            self.account(header)
            if self.mustHold(header) {
                self.state = .holding(header)
                var held = ByteBufferAllocator().buffer(capacity: header.headerLength + Int(header.payloadLength))
                held.writeBuffer(&stash)
                self.stash = held
                return self.continueHolding(header, &buffer)
            }
            self.state = header.payloadLength == 0 ? .header : .payload(remaining: header.payloadLength)
            if self.inflate(buffer, at: buffer.readerIndex, count: 0, remainingAfter: header.payloadLength) != nil {
                buffer.moveReaderIndex(to: buffer.writerIndex)
            }
            return .forward(stash)
        }
    }

    /// Collects a held control frame; reports it once complete.
    private mutating func continueHolding(_ header: FrameHeader, _ buffer: inout ByteBuffer) -> Event {
        guard var held = self.stash else { return .needMore }
        let total = header.headerLength + Int(header.payloadLength)
        if var part = buffer.readSlice(length: min(total - held.readableBytes, buffer.readableBytes)) {
            held.writeBuffer(&part)
        }
        guard held.readableBytes == total else {
            self.stash = held
            return .needMore
        }
        self.stash = nil
        self.state = .header
        var payload = held.getBytes(at: held.readerIndex + header.headerLength, length: Int(header.payloadLength)) ?? []
        if header.masked {
            let key = [header.maskKey.0, header.maskKey.1, header.maskKey.2, header.maskKey.3]
            for index in payload.indices { payload[index] ^= key[index & 3] }
        }
        return .control(opcode: header.opcode, frame: held, payload: payload)
    }

    // MARK: Rules

    private func mustHold(_ header: FrameHeader) -> Bool {
        header.opcode == FrameOpcode.close || (header.opcode == FrameOpcode.pong && self.holdPongs)
    }

    private func check(_ header: FrameHeader) -> (code: UInt16, reason: String)? {
        let opcode = header.opcode
        switch opcode {
        case FrameOpcode.continuation, FrameOpcode.text, FrameOpcode.binary, FrameOpcode.close, FrameOpcode.ping, FrameOpcode.pong:
            break
        default:
            return (CloseCode.protocolError, "unknown opcode \(opcode)")
        }
        if header.masked != self.rules.requireMask {
            return (CloseCode.protocolError, self.rules.requireMask ? "unmasked client frame" : "masked server frame")
        }
        if header.isControl {
            if header.rsv != 0 { return (CloseCode.protocolError, "reserved bits set on a control frame") }
            if !header.fin { return (CloseCode.protocolError, "fragmented control frame") }
            if header.payloadLength > 125 { return (CloseCode.protocolError, "control frame payload over 125 bytes") }
            if opcode == FrameOpcode.close && header.payloadLength == 1 {
                return (CloseCode.protocolError, "close payload of 1 byte")
            }
            return nil
        }
        if opcode == FrameOpcode.continuation {
            if !self.inMessage { return (CloseCode.protocolError, "continuation frame without a message") }
            if header.rsv != 0 { return (CloseCode.protocolError, "reserved bits set on a continuation frame") }
        } else {
            if self.inMessage { return (CloseCode.protocolError, "new message inside an unfinished message") }
            if header.rsv & ~self.rules.allowedRSV != 0 {
                return (CloseCode.protocolError, "reserved bits set without a negotiated extension")
            }
        }
        if header.payloadLength > self.rules.maxFrameBytes {
            return (CloseCode.messageTooBig, "frame larger than \(self.rules.maxFrameBytes) bytes")
        }
        let sofar = opcode == FrameOpcode.continuation ? self.messageBytes : 0
        if header.payloadLength > self.rules.maxMessageBytes - min(sofar, self.rules.maxMessageBytes) {
            return (CloseCode.messageTooBig, "message larger than \(self.rules.maxMessageBytes) bytes")
        }
        if opcode != FrameOpcode.continuation, let rate = self.rules.messagesPerSecond, self.availableTokens(rate: rate) < 1 {
            return (CloseCode.policyViolation, "message rate exceeded")
        }
        return nil
    }

    private mutating func account(_ header: FrameHeader) {
        self.frames &+= 1
        guard !header.isControl else {
            self.inflatedFrame = nil
            return
        }
        self.dataFrames &+= 1
        if header.opcode != FrameOpcode.continuation {
            self.messages &+= 1
            self.messageBytes = 0
            // Only compressed messages go through the inflater (uncompressed ones are not part of the sender's
            // deflate stream either).
            self.inflatingMessage = self.rules.inflate != nil && header.rsv & 0b100 != 0
            self.messageStarting = self.inflatingMessage
            if let rate = self.rules.messagesPerSecond {
                self.tokens = self.availableTokens(rate: rate) - 1
                self.refilled = .now()
            }
        }
        self.messageBytes &+= header.payloadLength
        self.inMessage = !header.fin
        self.inflatedFrame = self.inflatingMessage ? header : nil
    }

    /// Tokens in the bucket now (capacity: one second's worth).
    private func availableTokens(rate: Int) -> Double {
        let elapsed = Double((NIODeadline.now() - self.refilled).nanoseconds) / 1e9
        return min(Double(rate), self.tokens + max(0, elapsed) * Double(rate))
    }

    private mutating func fail(_ code: UInt16, _ reason: String, _ buffer: inout ByteBuffer) -> Event {
        self.state = .failed(midFrame: false)
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .violation(code: code, reason: reason)
    }

    // MARK: Compressed messages

    /// Inflates the payload bytes of a compressed message as they pass, `count` bytes at `index`, with
    /// `remainingAfter` bytes of the frame still to come. On a violation it becomes pending and the result says how
    /// many of these bytes may still be forwarded (those the inflater read before it stopped); nil otherwise.
    private mutating func inflate(_ buffer: ByteBuffer, at index: Int, count: Int, remainingAfter: UInt64) -> Int? {
        guard let frame = self.inflatedFrame else { return nil }
        if self.inspector == nil, let sender = self.rules.inflate {
            self.inspector = DeflateInspector(sender: sender, limit: self.rules.maxMessageBytes)
        }
        var outcome = DeflateInspector.Outcome.fine
        if self.messageStarting {
            self.messageStarting = false
            outcome = self.inspector?.startMessage() ?? .fine
        }
        if outcome == .fine && count > 0 {
            let offset = frame.payloadLength - remainingAfter - UInt64(count)
            outcome = self.inspector?.feed(
                buffer, at: index, count: count, mask: frame.masked ? frame.maskKey : nil, maskOffset: offset
            ) ?? .fine
        }
        if outcome == .fine && remainingAfter == 0 && frame.fin {
            outcome = self.inspector?.finishMessage() ?? .fine
            outcome = Self.atEnd(outcome, count)
        }
        let accepted: Int
        switch outcome {
        case .fine:
            return nil
        case .overLimit(let read):
            accepted = read
            self.pendingViolation = (CloseCode.messageTooBig, "message larger than \(self.rules.maxMessageBytes) bytes inflated")
        case .corrupt(let read):
            accepted = read
            self.pendingViolation = (CloseCode.invalidPayload, "invalid compressed data")
        }
        self.state = .failed(midFrame: accepted < count || remainingAfter > 0)
        return accepted
    }

    /// An outcome of the end of a message, whose bytes were all read.
    private static func atEnd(_ outcome: DeflateInspector.Outcome, _ count: Int) -> DeflateInspector.Outcome {
        switch outcome {
        case .fine: return .fine
        case .overLimit: return .overLimit(accepted: count)
        case .corrupt: return .corrupt(accepted: count)
        }
    }

    /// Ends a run at `position` because of a pending violation: the run is forwarded first, the violation follows.
    private mutating func stop(at position: Int, runStart: Int, _ buffer: inout ByteBuffer) -> Event {
        let run = position > runStart ? buffer.readSlice(length: position - runStart) : nil
        buffer.moveReaderIndex(to: buffer.writerIndex)
        if let run { return .forward(run) }
        guard let violation = self.pendingViolation else { return .needMore }
        self.pendingViolation = nil
        return .violation(code: violation.code, reason: violation.reason)
    }
}
