import Crypto
import Foundation

/// The `Sec-WebSocket-Accept` computation of RFC 6455 §4.2.2.
enum WebSocketAccept {
    private static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The accept value a server must answer for `key`.
    static func value(forKey key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Array((key.trimmingSpaces() + guid).utf8))
        return Data(digest).base64EncodedString()
    }

    /// A fresh random key, for backend legs whose client did not send one (HTTP/2).
    static func randomKey() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
    }
}
