import Foundation
import GatehouseCluster
import NIOHTTP1

/// The message and channel endpoints of the admin API (the `@connections` API and pub/sub channels).
///
/// - `POST /connections/{id}/messages`, `POST /subjects/{subject}/messages`, `POST /channels/{name}/messages`: the
///   body is one message (`Content-Type: text/plain` → text frame, its body must be UTF-8; anything else → binary);
///   answers `{"delivered": n, "full": f}`.
/// - `PUT` / `DELETE /connections/{id}/channels/{name}`: subscribe or unsubscribe one connection.
/// - `GET /channels/{name}`: `{"channel": name, "subscribers": n}`.
///
/// Path segments are percent-decoded; connection ids are `42` or `NODE:42`.
extension AdminAPI {
    /// Answers `request` when its path is one of these endpoints; nil otherwise. Call after authorization.
    func handleMessages(_ request: AdminRequest) async -> AdminResponse? {
        guard let endpoint = MessagesEndpoint(path: request.path) else { return nil }
        switch endpoint {
        case .invalid(let reason):
            return .text(.badRequest, reason)
        case .connectionMessages(let id):
            guard request.method == .POST else { return Self.methodNotAllowed("POST") }
            guard Self.isConnectionID(id) else { return .text(.badRequest, "connection ids are N or NODE:N") }
            guard let message = Self.message(request) else { return Self.notUTF8 }
            let answer = await self.server.push(to: ConnectionSelector(id: id), message: message)
            return Self.deliveryResponse(answer, notFound: "no connection \(id)")
        case .subjectMessages(let subject):
            guard request.method == .POST else { return Self.methodNotAllowed("POST") }
            guard let message = Self.message(request) else { return Self.notUTF8 }
            let answer = await self.server.push(to: ConnectionSelector(subject: subject), message: message)
            return Self.deliveryResponse(answer, notFound: nil)
        case .channelMessages(let channel):
            guard request.method == .POST else { return Self.methodNotAllowed("POST") }
            if let problem = ChannelName.problem(channel) { return .text(.badRequest, problem) }
            guard let message = Self.message(request) else { return Self.notUTF8 }
            switch await self.server.broadcast(channel: channel, message: message) {
            case .done(let count): return .json(.ok, ["delivered": count.delivered, "full": count.full])
            case .unavailable(let reason): return .text(.serviceUnavailable, reason)
            }
        case .channel(let channel):
            guard request.method == .GET else { return Self.methodNotAllowed("GET") }
            if let problem = ChannelName.problem(channel) { return .text(.badRequest, problem) }
            switch await self.server.subscriberCount(channel: channel) {
            case .done(let count): return .json(.ok, ["channel": channel, "subscribers": count])
            case .unavailable(let reason): return .text(.serviceUnavailable, reason)
            }
        case .subscription(let id, let channel):
            let subscribed: Bool
            switch request.method {
            case .PUT: subscribed = true
            case .DELETE: subscribed = false
            default: return Self.methodNotAllowed("PUT, DELETE")
            }
            guard Self.isConnectionID(id) else { return .text(.badRequest, "connection ids are N or NODE:N") }
            if let problem = ChannelName.problem(channel) { return .text(.badRequest, problem) }
            switch await self.server.subscribe(connection: id, channel: channel, subscribed: subscribed) {
            case .unavailable(let reason):
                return .text(.serviceUnavailable, reason)
            case .done(let result):
                switch result.change {
                case .noSuchConnection:
                    return .text(.notFound, "no connection \(id)")
                case .tooManyChannels:
                    return .text(.conflict, "connection \(id) is already subscribed to \(ChannelName.maxPerConnection) channels")
                case .changed, .unchanged:
                    var body: [String: Any] = ["subscribed": subscribed, "changed": result.change == .changed]
                    if let channels = result.channels { body["channels"] = channels }
                    return .json(.ok, body)
                }
            }
        }
    }

    /// The message a request's body carries: text for `text/plain` (any parameters), binary otherwise. Nil when a
    /// text body is not UTF-8.
    static func message(_ request: AdminRequest) -> PushMessage? {
        let mediaType = request.headers["content-type"].first.map { value in
            (value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmingSpaces().lowercased()
        }
        let text = mediaType == "text/plain"
        if text && String(validating: request.body, as: UTF8.self) == nil { return nil }
        return PushMessage(text: text, body: Data(request.body))
    }

    private static let notUTF8 = AdminResponse.text(.badRequest, "a text/plain body must be valid UTF-8")

    /// `42`, or `NODE:42` (the node's name is everything before the last `:`).
    static func isConnectionID(_ id: String) -> Bool {
        if UInt64(id) != nil { return true }
        guard let colon = id.lastIndex(of: ":"), colon != id.startIndex else { return false }
        return UInt64(id[id.index(after: colon)...]) != nil
    }

    /// 200 with the counts; 429 when every matching connection had a full queue; 404 (`notFound` given) when none
    /// matched.
    private static func deliveryResponse(_ answer: DeliveryAnswer, notFound: String?) -> AdminResponse {
        switch answer {
        case .unavailable(let reason):
            return .text(.serviceUnavailable, reason)
        case .done(let count):
            if count.delivered == 0 && count.full == 0, let notFound { return .text(.notFound, notFound) }
            let status: HTTPResponseStatus = count.delivered == 0 && count.full > 0 ? .tooManyRequests : .ok
            return .json(status, ["delivered": count.delivered, "full": count.full])
        }
    }

    private static func methodNotAllowed(_ allowed: String) -> AdminResponse {
        var response = AdminResponse.text(.methodNotAllowed, "method not allowed")
        response.headers = [("Allow", allowed)]
        return response
    }
}

/// Which message or channel endpoint a path names, with its decoded parameters.
enum MessagesEndpoint: Equatable {
    case connectionMessages(id: String)
    case subjectMessages(subject: String)
    case subscription(id: String, channel: String)
    case channelMessages(channel: String)
    case channel(String)
    /// One of these paths with a segment that does not decode (or is empty).
    case invalid(String)

    /// Nil when `path` is none of these endpoints.
    init?(path: String) {
        let raw = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard let first = raw.first, ["connections", "subjects", "channels"].contains(first) else { return nil }
        let shape = Array(raw)
        // Only these shapes are ours; `/connections/{id}` (DELETE) stays with the main table.
        switch (shape.count, String(shape[0])) {
        case (3, "connections") where shape[2] == "messages",
            (3, "subjects") where shape[2] == "messages",
            (3, "channels") where shape[2] == "messages",
            (4, "connections") where shape[2] == "channels",
            (2, "channels"):
            break
        default:
            return nil
        }
        var decoded: [String] = []
        for segment in shape {
            guard !segment.isEmpty, let value = String(segment).removingPercentEncoding else {
                self = .invalid("path segments must be non-empty and correctly percent-encoded")
                return
            }
            decoded.append(value)
        }
        switch (decoded.count, decoded[0]) {
        case (3, "connections"): self = .connectionMessages(id: decoded[1])
        case (3, "subjects"): self = .subjectMessages(subject: decoded[1])
        case (3, _): self = .channelMessages(channel: decoded[1])
        case (4, _): self = .subscription(id: decoded[1], channel: decoded[3])
        default: self = .channel(decoded[1])
        }
    }
}
