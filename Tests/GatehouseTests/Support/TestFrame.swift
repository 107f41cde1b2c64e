import NIOCore

/// A WebSocket frame as a test sees it on the wire, parsed and built independently of the proxy's own code.
struct TestFrame: Equatable, CustomStringConvertible {
    var fin: Bool
    var rsv: UInt8
    var opcode: UInt8
    var masked: Bool
    var payload: [UInt8]

    static let continuation: UInt8 = 0x0
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA

    var description: String {
        "frame(op=\(self.opcode) fin=\(self.fin) rsv=\(self.rsv) masked=\(self.masked) len=\(self.payload.count))"
    }

    /// The close code of a close frame, if it carries one.
    var closeCode: UInt16? {
        guard self.opcode == Self.close, self.payload.count >= 2 else { return nil }
        return UInt16(self.payload[0]) << 8 | UInt16(self.payload[1])
    }

    /// The close reason text.
    var closeReason: String {
        guard self.payload.count > 2 else { return "" }
        return String(decoding: self.payload[2...], as: UTF8.self)
    }

    /// Encodes a frame; clients pass a mask, servers nil.
    static func encode(
        fin: Bool = true, rsv: UInt8 = 0, opcode: UInt8, payload: [UInt8], mask: [UInt8]? = randomMask()
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(payload.count + 14)
        bytes.append((fin ? 0x80 : 0) | (rsv << 4) | opcode)
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        if payload.count < 126 {
            bytes.append(maskBit | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            bytes.append(maskBit | 126)
            bytes.append(UInt8(payload.count >> 8))
            bytes.append(UInt8(payload.count & 0xFF))
        } else {
            bytes.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((UInt64(payload.count) >> UInt64(shift)) & 0xFF)) }
        }
        if let mask {
            bytes.append(contentsOf: mask)
            let start = bytes.count
            bytes.append(contentsOf: payload)
            bytes.withUnsafeMutableBytes { Self.applyMask(mask, to: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
        } else {
            bytes.append(contentsOf: payload)
        }
        return bytes
    }

    /// A close frame payload: code and reason.
    static func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
    }

    /// XORs `mask` over `bytes` eight bytes at a time (tests move many megabytes in debug builds).
    static func applyMask(_ mask: [UInt8], to bytes: UnsafeMutableRawBufferPointer) {
        var word: UInt64 = 0
        withUnsafeMutableBytes(of: &word) { wordBytes in
            for index in 0..<8 { wordBytes[index] = mask[index & 3] }
        }
        let words = bytes.count / 8
        for index in 0..<words {
            let offset = index * 8
            let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) ^ word
            bytes.storeBytes(of: value, toByteOffset: offset, as: UInt64.self)
        }
        for index in (words * 8)..<bytes.count { bytes[index] ^= mask[index & 3] }
    }

    static func randomMask() -> [UInt8] {
        (0..<4).map { _ in UInt8.random(in: 0...255) }
    }

    /// Parses one frame from the front of `buffer`, consuming it; nil when incomplete.
    static func parse(_ buffer: inout ByteBuffer) -> TestFrame? {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self)
        else { return nil }
        var offset = buffer.readerIndex + 2
        var length = UInt64(second & 0x7F)
        if length == 126 {
            guard let value = buffer.getInteger(at: offset, as: UInt16.self) else { return nil }
            length = UInt64(value)
            offset += 2
        } else if length == 127 {
            guard let value = buffer.getInteger(at: offset, as: UInt64.self) else { return nil }
            length = value
            offset += 8
        }
        let masked = second & 0x80 != 0
        var mask: [UInt8] = []
        if masked {
            guard let bytes = buffer.getBytes(at: offset, length: 4) else { return nil }
            mask = bytes
            offset += 4
        }
        guard length <= UInt64(Int.max), var payload = buffer.getBytes(at: offset, length: Int(length)) else { return nil }
        if masked {
            payload.withUnsafeMutableBytes { Self.applyMask(mask, to: $0) }
        }
        buffer.moveReaderIndex(to: offset + Int(length))
        return TestFrame(fin: first & 0x80 != 0, rsv: (first >> 4) & 0x7, opcode: first & 0x0F, masked: masked, payload: payload)
    }
}
