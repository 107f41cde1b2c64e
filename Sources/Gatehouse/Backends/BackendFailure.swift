import NIOHTTP1

/// Why the proxy could not obtain a WebSocket from a backend server.
enum BackendFailure: Error, Sendable {
    /// No TCP connection within `connect_timeout`.
    case connectTimeout(String)
    /// Refused, reset or unreachable.
    case connectFailed(String, String)
    /// The server accepted TCP but did not answer the upgrade within `response_timeout`.
    case responseTimeout(String)
    /// The server closed before answering.
    case closedBeforeAnswer(String)
    /// The answer could not be accepted.
    case malformedAnswer(String, String)

    /// Whether another server of the pool may be tried: nothing was processed by this one.
    var isRetryable: Bool {
        switch self {
        case .connectTimeout, .connectFailed, .closedBeforeAnswer: return true
        case .responseTimeout, .malformedAnswer: return false
        }
    }

    var isTimeout: Bool {
        switch self {
        case .connectTimeout, .responseTimeout: return true
        default: return false
        }
    }

    /// The server concerned, as HOST:PORT.
    var server: String {
        switch self {
        case .connectTimeout(let server), .connectFailed(let server, _), .responseTimeout(let server),
            .closedBeforeAnswer(let server), .malformedAnswer(let server, _):
            return server
        }
    }

    /// The refusal sent to the client.
    var refusal: HandshakeRefusal {
        switch self {
        case .connectTimeout: return HandshakeRefusal(.gatewayTimeout, "backend connect timed out")
        case .responseTimeout: return HandshakeRefusal(.gatewayTimeout, "backend did not answer the upgrade in time")
        case .connectFailed: return HandshakeRefusal(.badGateway, "backend unavailable")
        case .closedBeforeAnswer: return HandshakeRefusal(.badGateway, "backend closed the connection before answering")
        case .malformedAnswer(_, let why): return HandshakeRefusal(.badGateway, "invalid backend answer: \(why)")
        }
    }
}
