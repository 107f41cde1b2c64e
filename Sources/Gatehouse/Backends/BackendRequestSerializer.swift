import NIOCore
import NIOHTTP1

/// The forwarded upgrade request as bytes.
enum BackendRequestSerializer {
    static func serialize(_ head: HTTPRequestHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 512)
        buffer.writeString("GET ")
        buffer.writeString(head.uri)
        buffer.writeString(" HTTP/1.1\r\n")
        // Names and values come from the client's parsed head or from the proxy; a CR or LF in one, however it
        // got there, must not become a forged header line.
        for (name, value) in head.headers where HTTPToken.isToken(name) && HTTPToken.isFieldValue(value) {
            buffer.writeString(name)
            buffer.writeString(": ")
            buffer.writeString(value)
            buffer.writeString("\r\n")
        }
        buffer.writeString("\r\n")
        return buffer
    }
}
