/// Close status codes (RFC 6455 §7.4) as wire numbers, and the check of codes peers send. The frame scanner reports
/// violations with these; the relay's state machine reasons with ``WebSocketCloseCode``.
public enum CloseCode {
    /// Normal closure.
    public static let normal: UInt16 = 1000
    /// An endpoint is going away (client vanished, idle, keepalive timeout, shutdown).
    public static let goingAway: UInt16 = 1001
    /// A peer broke the protocol.
    public static let protocolError: UInt16 = 1002
    /// A text message was not UTF-8 (or a close reason was not).
    public static let invalidPayload: UInt16 = 1007
    /// A policy was violated (token expired, message rate, administrator).
    public static let policyViolation: UInt16 = 1008
    /// A frame or message was larger than allowed.
    public static let messageTooBig: UInt16 = 1009
    /// The backend failed mid-stream (the proxy acts as a gateway).
    public static let badGateway: UInt16 = 1014

    /// Whether a peer may send `code` in a close frame (1005, 1006 and 1015 are reserved for local use).
    static func isValidOnTheWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014: return true
        case 3000...4999: return true
        default: return false
        }
    }
}
