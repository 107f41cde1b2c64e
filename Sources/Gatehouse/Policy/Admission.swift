import NIOHTTP1
import Tracing

/// A request that passed routing and policy, with what to send the backend.
struct Admission {
    /// Process-unique id of the connection to be (the registry and lease key in cluster mode).
    let connectionID: UInt64
    /// The route chosen.
    let route: ActiveRoute
    /// The upgrade request for the backend.
    let backendRequest: HTTPRequestHead
    /// The `Sec-WebSocket-Accept` the backend must answer.
    let expectedAccept: String
    /// Who the token says the client is, when the route requires one.
    let identity: AuthIdentity?
    /// Subprotocol to answer the client with when the backend was offered none (the token entry was alone).
    let clientSubprotocol: String?
    /// The route's connection slot, returned when the connection ends or is refused later.
    let ticket: AdmissionTicket
    /// The handshake span's context when tracing is on: the backend request and the connection span continue it.
    var traceContext: ServiceContext? = nil
}
