import NIOCore

/// The header of one WebSocket frame (RFC 6455 §5.2), as parsed on the relay path. The payload is never part of
/// it: the relay forwards payload bytes as they come.
struct FrameHeader: Equatable {
    /// Final fragment of a message.
    var fin: Bool
    /// The three reserved bits (RSV1 is 0b100).
    var rsv: UInt8
    /// The opcode nibble.
    var opcode: UInt8
    /// Whether the payload is masked.
    var masked: Bool
    /// The masking key, when masked.
    var maskKey: (UInt8, UInt8, UInt8, UInt8)
    /// Payload length.
    var payloadLength: UInt64
    /// Bytes of the header itself (2 to 14).
    var headerLength: Int

    static func == (lhs: FrameHeader, rhs: FrameHeader) -> Bool {
        lhs.fin == rhs.fin && lhs.rsv == rhs.rsv && lhs.opcode == rhs.opcode && lhs.masked == rhs.masked
            && lhs.maskKey == rhs.maskKey && lhs.payloadLength == rhs.payloadLength && lhs.headerLength == rhs.headerLength
    }

    /// Whether this is a control frame (close, ping, pong or a reserved control opcode).
    var isControl: Bool { self.opcode & 0x8 != 0 }

    /// Result of trying to parse a header from the front of some bytes.
    enum ParseResult: Equatable {
        case incomplete
        case header(FrameHeader)
        /// The 64-bit length has its most significant bit set (RFC 6455 §5.2).
        case invalidLength
    }

    /// Parses a header starting at `index` in `buffer` without moving its reader index.
    static func parse(_ buffer: ByteBuffer, at index: Int) -> ParseResult {
        let available = buffer.writerIndex - index
        guard available >= 2, let first = buffer.getInteger(at: index, as: UInt8.self),
            let second = buffer.getInteger(at: index + 1, as: UInt8.self)
        else { return .incomplete }
        let masked = second & 0x80 != 0
        var length = UInt64(second & 0x7F)
        var headerLength = 2
        if length == 126 {
            guard let extended = buffer.getInteger(at: index + 2, as: UInt16.self) else { return .incomplete }
            length = UInt64(extended)
            headerLength = 4
        } else if length == 127 {
            guard let extended = buffer.getInteger(at: index + 2, as: UInt64.self) else { return .incomplete }
            guard extended & (1 << 63) == 0 else { return .invalidLength }
            length = extended
            headerLength = 10
        }
        var key: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        if masked {
            guard let bytes = buffer.getInteger(at: index + headerLength, as: UInt32.self) else { return .incomplete }
            key = (UInt8(bytes >> 24), UInt8((bytes >> 16) & 0xFF), UInt8((bytes >> 8) & 0xFF), UInt8(bytes & 0xFF))
            headerLength += 4
        }
        return .header(
            FrameHeader(
                fin: first & 0x80 != 0, rsv: (first >> 4) & 0x7, opcode: first & 0x0F, masked: masked, maskKey: key,
                payloadLength: length, headerLength: headerLength
            )
        )
    }
}

/// Opcodes of RFC 6455 §5.2.
enum FrameOpcode {
    static let continuation: UInt8 = 0x0
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA
}
