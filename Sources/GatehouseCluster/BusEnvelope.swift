import Foundation

/// One message on the cluster bus, with who sent it and when (for the lag metric).
public struct BusEnvelope: Sendable, Equatable, Codable {
    /// Largest encoded envelope a node publishes (a push body is at most 64 KiB, base64 makes it 4/3 larger).
    public static let maxEncodedBytes = 128 << 10

    /// Sending node.
    public var from: String
    /// Sender's wall clock at publication.
    public var sent: Date
    public var message: BusMessage

    public init(from: String, sent: Date, message: BusMessage) {
        self.from = from
        self.sent = sent
        self.message = message
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data) throws -> BusEnvelope {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try decoder.decode(BusEnvelope.self, from: data)
    }
}

/// What nodes say to each other. Commands carry a request id; each node that acts on one answers with a
/// ``BusReply`` addressed to the requesting node, so the admin API can answer with what really happened.
public enum BusMessage: Sendable, Equatable, Codable {
    /// Close matching connections with `code` and `reason`.
    case kick(request: String, selector: ConnectionSelector, code: UInt16, reason: String)
    /// A revocation was stored: refuse matching tokens and close matching connections with 1008 "token revoked".
    case revoked(Revocation)
    /// A revocation was deleted.
    case revocationDeleted(id: Int64)
    /// Deliver one message to matching connections.
    case push(request: String, selector: ConnectionSelector, message: PushMessage)
    /// Deliver one message to every connection subscribed to `channel`.
    case broadcast(request: String, channel: String, message: PushMessage)
    /// Subscribe (or unsubscribe) one connection to a channel.
    case subscription(request: String, connection: String, channel: String, subscribed: Bool)
    /// A node's answer to a command.
    case reply(BusReply)
}

/// A node's answer to a bus command.
public struct BusReply: Sendable, Equatable, Codable {
    /// The command's request id.
    public var request: String
    /// The node that sent the command (the only one that reads this reply).
    public var to: String
    /// Connections acted on: closed, delivered to (queued), or subscription changed.
    public var count: Int
    /// Connections that matched but could not take a pushed message (their queue is full).
    public var full: Int
    /// What a command for one connection came to, when a count does not say it (a subscription change).
    public var outcome: String?

    public init(request: String, to: String, count: Int, full: Int = 0, outcome: String? = nil) {
        self.request = request
        self.to = to
        self.count = count
        self.full = full
        self.outcome = outcome
    }
}

/// Which connections a command is for; nil fields match anything, but at least one is set.
public struct ConnectionSelector: Sendable, Equatable, Codable {
    /// Cluster-unique id (`node:local-id`).
    public var id: String?
    public var subject: String?
    public var route: String?

    public init(id: String? = nil, subject: String? = nil, route: String? = nil) {
        self.id = id
        self.subject = subject
        self.route = route
    }
}

/// A message the proxy itself sends to clients (the `@connections` API and channels).
public struct PushMessage: Sendable, Equatable, Codable {
    /// Text frame (UTF-8 checked at the admin API) or binary frame.
    public var text: Bool
    public var body: Data

    public init(text: Bool, body: Data) {
        self.text = text
        self.body = body
    }
}
