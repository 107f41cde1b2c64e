import NIOCore
import NIOHTTP1

/// What a backend server answered to the forwarded upgrade request.
enum BackendAnswer {
    /// A valid 101: the channel is ready to be spliced to the client. Reads are parked until the relay takes over.
    case upgraded(BackendUpgrade)
    /// Any other well-formed answer: the application's decision, relayed to the client as is.
    case refused(server: BindAddress, head: HTTPResponseHead, body: ByteBuffer)
}

/// A backend connection that has switched to WebSocket.
struct BackendUpgrade {
    /// The backend channel; its HTTP handlers are still in place until the splice removes them.
    let channel: Channel
    /// The 101 answer.
    let head: HTTPResponseHead
    /// The server that answered.
    let server: BindAddress
}
