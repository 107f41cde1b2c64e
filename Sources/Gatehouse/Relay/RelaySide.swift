/// One end of a relayed WebSocket.
public enum RelaySide: String, Sendable {
    /// The client that connected to the proxy.
    case client
    /// The backend server the proxy connected to.
    case backend

    /// The other end.
    var peer: RelaySide {
        self == .client ? .backend : .client
    }
}
