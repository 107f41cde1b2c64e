import NIOHTTP1
import NIOWebSocket

/// The decisions of one WebSocket health check, step by step: a valid 101 for our key, then our ping answered by
/// the matching pong, then our close 1000 answered by the server's close. Pure: the probe's channel handlers feed it
/// what arrives and do what it says.
struct WebSocketProbeSteps: Sendable, Equatable {
    enum Stage: Sendable, Equatable {
        case awaitingAnswer
        case awaitingUpgradeEnd
        case awaitingPong
        case awaitingClose
        case finished
    }

    enum Action: Sendable, Equatable {
        case none
        /// The 101 is complete: switch the channel to frames and send this ping payload.
        case sendPing([UInt8])
        /// The pong came back: send a close 1000.
        case sendClose
        case pass
        case fail(String)
    }

    /// The `Sec-WebSocket-Key` sent.
    let key: String
    /// The payload of our ping; a pong carrying anything else is unsolicited and ignored.
    let pingPayload: [UInt8]
    private(set) var stage = Stage.awaitingAnswer

    init(key: String, pingPayload: [UInt8]) {
        self.key = key
        self.pingPayload = pingPayload
    }

    mutating func answer(_ head: HTTPResponseHead) -> Action {
        guard self.stage == .awaitingAnswer else { return self.finish(.fail("unexpected second answer")) }
        guard head.status == .switchingProtocols else {
            return self.finish(.fail("answered \(head.status.code) instead of 101"))
        }
        if let problem = Self.problem(with101: head, key: self.key) { return self.finish(.fail("invalid 101: \(problem)")) }
        self.stage = .awaitingUpgradeEnd
        return .none
    }

    mutating func upgradeEnded() -> Action {
        guard self.stage == .awaitingUpgradeEnd else { return self.finish(.fail("unexpected end of answer")) }
        self.stage = .awaitingPong
        return .sendPing(self.pingPayload)
    }

    /// A frame from the server (payload unmasked).
    mutating func frame(_ opcode: WebSocketOpcode, payload: [UInt8]) -> Action {
        switch (self.stage, opcode) {
        case (.awaitingPong, .pong) where payload == self.pingPayload:
            self.stage = .awaitingClose
            return .sendClose
        case (.awaitingPong, .connectionClose):
            return self.finish(.fail("server closed before the pong\(Self.describeClose(payload))"))
        case (.awaitingClose, .connectionClose):
            return self.finish(.pass)
        case (.awaitingPong, _), (.awaitingClose, _):
            // Data, unsolicited pongs and the server's own pings do not decide anything.
            return .none
        default:
            return self.finish(.fail("frame before the upgrade completed"))
        }
    }

    /// The check's time is up: why, by stage.
    mutating func timedOut() -> Action {
        switch self.stage {
        case .awaitingAnswer, .awaitingUpgradeEnd: return self.finish(.fail("no upgrade answer in time"))
        case .awaitingPong: return self.finish(.fail("no pong in time"))
        case .awaitingClose: return self.finish(.fail("no close answer in time"))
        case .finished: return .none
        }
    }

    /// The connection ended (or failed) before the check finished.
    mutating func connectionEnded(_ why: String) -> Action {
        guard self.stage != .finished else { return .none }
        return self.finish(.fail(why))
    }

    private mutating func finish(_ action: Action) -> Action {
        self.stage = .finished
        return action
    }

    /// What is wrong with a 101 answered to `key`, or nil: HTTP/1.1, `Upgrade: websocket`, `Connection: Upgrade` and
    /// the right `Sec-WebSocket-Accept` (the probe offers no subprotocol and no extension, so none may be selected).
    static func problem(with101 head: HTTPResponseHead, key: String) -> String? {
        guard head.version == .http1_1 else { return "not HTTP/1.1" }
        let upgrade = head.headers["upgrade"].flatMap { HTTPToken.list($0) }
        guard upgrade.contains(where: { $0.lowercased() == "websocket" }) else { return "no Upgrade: websocket" }
        let connection = head.headers["connection"].flatMap { HTTPToken.list($0) }
        guard connection.contains(where: { $0.lowercased() == "upgrade" }) else { return "no Connection: Upgrade" }
        let accepts = head.headers["sec-websocket-accept"]
        guard accepts.count == 1, accepts[0].trimmingSpaces() == WebSocketAccept.value(forKey: key) else {
            return "wrong Sec-WebSocket-Accept"
        }
        guard head.headers["sec-websocket-protocol"].isEmpty else { return "selected a subprotocol none was offered" }
        guard head.headers["sec-websocket-extensions"].isEmpty else { return "accepted an extension none was offered" }
        return nil
    }

    private static func describeClose(_ payload: [UInt8]) -> String {
        guard payload.count >= 2 else { return "" }
        return " (code \(UInt16(payload[0]) << 8 | UInt16(payload[1])))"
    }
}
