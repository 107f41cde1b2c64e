import NIOCore

/// Frames the proxy writes on its own behalf: close frames and keepalive pings.
///
/// Frames toward a backend are masked with a fresh random key (the proxy is its client); frames toward a client
/// are never masked.
enum ProxyFrame {
    /// A close frame with `code` and a reason cut to fit the 125-byte control payload.
    static func close(code: UInt16, reason: String, masked: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var payload: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        payload += Self.truncatedUTF8(reason, limit: 123)
        return Self.frame(opcode: FrameOpcode.close, payload: payload, masked: masked, allocator: allocator)
    }

    /// A ping with `payload` (at most 125 bytes).
    static func ping(payload: [UInt8], masked: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.frame(opcode: FrameOpcode.ping, payload: payload, masked: masked, allocator: allocator)
    }

    static func frame(opcode: UInt8, payload: [UInt8], masked: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        precondition(payload.count <= 125, "control payloads are at most 125 bytes")
        var buffer = allocator.buffer(capacity: 6 + payload.count)
        buffer.writeInteger(0x80 | opcode)
        buffer.writeInteger((masked ? 0x80 : 0) | UInt8(payload.count))
        if masked {
            var generator = SystemRandomNumberGenerator()
            let key = generator.next() as UInt32
            buffer.writeInteger(key)
            let keyBytes = [UInt8(key >> 24), UInt8((key >> 16) & 0xFF), UInt8((key >> 8) & 0xFF), UInt8(key & 0xFF)]
            for (index, byte) in payload.enumerated() { buffer.writeInteger(byte ^ keyBytes[index & 3]) }
        } else {
            buffer.writeBytes(payload)
        }
        return buffer
    }

    /// At most `limit` bytes of `text`, cut on a character boundary.
    static func truncatedUTF8(_ text: String, limit: Int) -> [UInt8] {
        var result: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if result.count + bytes.count > limit { break }
            result += bytes
        }
        return result
    }
}
