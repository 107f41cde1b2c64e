import NIOCore
import NIOHTTP2

/// Sits right below NIOHTTP2's handler and follows the frames it writes (one frame per write, a DATA payload in
/// a write of its own), to correct two frames the library cannot be configured to write as the proxy needs:
///
/// - The server's first SETTINGS advertises the listener's `max_concurrent_streams`, while the library itself
///   enforces a higher limit: it treats an excess stream as a connection error (GOAWAY PROTOCOL_ERROR, killing
///   every WebSocket on the connection), whereas RFC 9113 §5.1.2 allows refusing just that stream, which the
///   ``HTTP2ConnectionWatcher`` does.
/// - A GOAWAY the library sends for a misbehaving peer names stream 0 although streams were processed: it is
///   corrected to the last stream the proxy took, and the watcher is told the connection failed, so it closes
///   TCP after a short grace (the library reads no more frames).
///
/// Per write it reads at most one 9-byte frame header; payloads pass untouched.
final class HTTP2OutboundFrameEditor: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private static let settingsType: UInt8 = 0x4
    private static let goAwayType: UInt8 = 0x7
    private static let maxConcurrentStreamsID: UInt16 = 0x3

    private let advertisedMaxStreams: Int
    private let watcher: HTTP2ConnectionWatcher
    /// Bytes of the current frame still to come in later writes.
    private var remaining = 0
    private var settingsEdited = false
    /// Set when a write did not start where a frame was expected: editing stops rather than guess.
    private var lostTrack = false

    init(advertisedMaxStreams: Int, watcher: HTTP2ConnectionWatcher) {
        self.advertisedMaxStreams = advertisedMaxStreams
        self.watcher = watcher
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.lostTrack else {
            context.write(data, promise: promise)
            return
        }
        switch self.unwrapOutboundIn(data) {
        case .fileRegion(let region):
            self.remaining = max(0, self.remaining - region.readableBytes)
            context.write(data, promise: promise)
        case .byteBuffer(var buffer):
            if self.remaining > 0 {
                self.remaining = max(0, self.remaining - buffer.readableBytes)
                context.write(data, promise: promise)
                return
            }
            let start = buffer.readerIndex
            guard buffer.readableBytes >= 9, let length = Self.frameLength(buffer, at: start),
                let type = buffer.getInteger(at: start + 3, as: UInt8.self)
            else {
                self.lostTrack = true
                context.write(data, promise: promise)
                return
            }
            let frameBytes = 9 + length
            if buffer.readableBytes < frameBytes {
                self.remaining = frameBytes - buffer.readableBytes
            } else if buffer.readableBytes > frameBytes {
                self.lostTrack = true  // several frames in one write: not what NIOHTTP2 does
            }
            var edited = false
            if type == Self.settingsType, !self.settingsEdited, buffer.readableBytes >= frameBytes {
                self.settingsEdited = true
                edited = self.editSettings(&buffer, payloadAt: start + 9, length: length)
            } else if type == Self.goAwayType, buffer.readableBytes >= frameBytes, length >= 8 {
                edited = self.editGoAway(&buffer, payloadAt: start + 9)
            }
            context.write(edited ? self.wrapOutboundOut(.byteBuffer(buffer)) : data, promise: promise)
        }
    }

    private static func frameLength(_ buffer: ByteBuffer, at index: Int) -> Int? {
        guard let high = buffer.getInteger(at: index, as: UInt8.self), let low = buffer.getInteger(at: index + 1, as: UInt16.self) else {
            return nil
        }
        return Int(high) << 16 | Int(low)
    }

    /// Replaces the value of SETTINGS_MAX_CONCURRENT_STREAMS with the advertised limit.
    private func editSettings(_ buffer: inout ByteBuffer, payloadAt payload: Int, length: Int) -> Bool {
        var edited = false
        var entry = payload
        while entry + 6 <= payload + length {
            if buffer.getInteger(at: entry, as: UInt16.self) == Self.maxConcurrentStreamsID {
                buffer.setInteger(UInt32(clamping: self.advertisedMaxStreams), at: entry + 2)
                edited = true
            }
            entry += 6
        }
        return edited
    }

    /// A GOAWAY with an error code comes from the library's connection-error path: name the streams that were
    /// processed, and have the connection closed shortly.
    private func editGoAway(_ buffer: inout ByteBuffer, payloadAt payload: Int) -> Bool {
        guard let lastStream = buffer.getInteger(at: payload, as: UInt32.self),
            let code = buffer.getInteger(at: payload + 4, as: UInt32.self), code != 0
        else { return false }
        self.watcher.connectionFailed()
        let processed = UInt32(Int32(self.watcher.lastStreamID))
        guard lastStream & 0x7fff_ffff == 0, processed > 0 else { return false }
        buffer.setInteger(processed, at: payload)
        return true
    }
}
