/// How a relayed connection ended, for the access log and the close metrics: the first close seen decides.
struct RelayEnding: Equatable, Sendable {
    /// Who started the close.
    enum ClosedBy: String, Sendable {
        case client
        case backend
        case proxy
        /// Both channels went away without any close being seen (the splice failed or was cut).
        case unknown

        init(_ side: RelaySide) {
            self = side == .client ? .client : .backend
        }
    }

    /// The close code, nil when the close frame carried none.
    var code: WebSocketCloseCode?
    var by: ClosedBy
    var reason: String

    /// What the log says when nothing was seen.
    static let unknown = RelayEnding(code: nil, by: .unknown, reason: "")
}

extension CloseCode {
    /// Service Restart (RFC 6455 registry): the server a connection was relayed to leaves; reconnect (maybe later).
    static let serviceRestart: UInt16 = 1012
}
