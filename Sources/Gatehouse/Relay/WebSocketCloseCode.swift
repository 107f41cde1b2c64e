/// A close status code (RFC 6455 §7.4) as the relay reasons about it: the codes the proxy sends by name, any
/// other valid code a peer sent as `other`.
enum WebSocketCloseCode: Equatable, Sendable {
    case normal
    case goingAway
    case protocolError
    case invalidPayload
    case policyViolation
    case messageTooBig
    case badGateway
    case other(UInt16)

    init(_ code: UInt16) {
        switch code {
        case CloseCode.normal: self = .normal
        case CloseCode.goingAway: self = .goingAway
        case CloseCode.protocolError: self = .protocolError
        case CloseCode.invalidPayload: self = .invalidPayload
        case CloseCode.policyViolation: self = .policyViolation
        case CloseCode.messageTooBig: self = .messageTooBig
        case CloseCode.badGateway: self = .badGateway
        default: self = .other(code)
        }
    }

    /// The number sent in a close frame.
    var code: UInt16 {
        switch self {
        case .normal: CloseCode.normal
        case .goingAway: CloseCode.goingAway
        case .protocolError: CloseCode.protocolError
        case .invalidPayload: CloseCode.invalidPayload
        case .policyViolation: CloseCode.policyViolation
        case .messageTooBig: CloseCode.messageTooBig
        case .badGateway: CloseCode.badGateway
        case .other(let code): code
        }
    }
}
