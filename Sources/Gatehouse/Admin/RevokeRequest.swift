import Foundation
import NIOHTTP1

/// How `gatehouse revoke` talks to a running proxy's admin API: `POST /revocations` with a JSON body,
/// `GET /revocations`, `DELETE /revocations/{id}`. The endpoint and token come from the configuration file and
/// the environment, as for `gatehouse reload`.
public enum RevokeRequest {
    /// What the command asks for.
    public enum Action: Sendable, Equatable {
        /// Store a revocation.
        case add(Body)
        /// List the revocations in force.
        case list
        /// Delete a revocation by id.
        case delete(Int64)
    }

    /// The JSON body of `POST /revocations`; absent fields are left out.
    public struct Body: Sendable, Equatable, Encodable {
        public var subject: String?
        public var jti: String?
        public var issuedBefore: Date?
        public var expires: Date?

        public init(subject: String?, jti: String?, issuedBefore: Date?, expires: Date?) {
            self.subject = subject
            self.jti = jti
            self.issuedBefore = issuedBefore
            self.expires = expires
        }

        private enum CodingKeys: String, CodingKey {
            case subject, jti
            case issuedBefore = "issued_before"
            case expires
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(self.subject, forKey: .subject)
            try container.encodeIfPresent(self.jti, forKey: .jti)
            try container.encodeIfPresent(self.issuedBefore.map(RevokeRequest.format), forKey: .issuedBefore)
            try container.encodeIfPresent(self.expires.map(RevokeRequest.format), forKey: .expires)
        }
    }

    /// A command line that does not say one clear thing; the message names the option at fault.
    public struct ArgumentError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { self.message }
    }

    /// What happened, as text to print: the answer body, or the error.
    public enum Outcome: Sendable, Equatable {
        case success(String)
        case failure(String)
    }

    /// Longest subject or jti sent (the proxy refuses tokens with a longer jti anyway).
    static let maxClaimBytes = 256

    /// Reads the command's options into one action, or says precisely what is wrong.
    public static func action(
        subject: String?, jti: String?, issuedBefore: String?, expires: String?, list: Bool, delete: String?, now: Date = Date()
    ) throws(ArgumentError) -> Action {
        let adding = subject != nil || jti != nil || issuedBefore != nil || expires != nil
        let modes = [adding ? "--subject/--jti" : nil, list ? "--list" : nil, delete != nil ? "--delete" : nil].compactMap { $0 }
        guard modes.count <= 1 else {
            throw ArgumentError(message: "\(modes.joined(separator: " and ")) cannot be combined: give one of them")
        }
        if list { return .list }
        if let delete {
            guard let id = Int64(delete), id > 0 else {
                throw ArgumentError(message: "--delete needs a revocation id (a positive integer, as --list shows), found '\(delete)'")
            }
            return .delete(id)
        }
        guard subject != nil || jti != nil else {
            if adding { throw ArgumentError(message: "a revocation needs --subject or --jti (--issued-before and --expires only narrow it)") }
            throw ArgumentError(message: "give --subject S or --jti J (with optional --issued-before and --expires), --list, or --delete ID")
        }
        for (option, value) in [("--subject", subject), ("--jti", jti)] {
            guard let value else { continue }
            guard !value.isEmpty else { throw ArgumentError(message: "\(option) must not be empty") }
            guard value.utf8.count <= Self.maxClaimBytes else {
                throw ArgumentError(message: "\(option) is longer than \(Self.maxClaimBytes) bytes")
            }
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw ArgumentError(message: "\(option) holds control characters")
            }
        }
        var before: Date?
        if let issuedBefore {
            guard let time = issuedBefore == "now" ? now : Self.parseTime(issuedBefore) else {
                throw ArgumentError(
                    message: "--issued-before must be an RFC 3339 time like 2025-06-01T12:00:00Z (or now), found '\(issuedBefore)'"
                )
            }
            before = time
        }
        var until: Date?
        if let expires {
            if let time = Self.parseTime(expires) {
                guard time > now else { throw ArgumentError(message: "--expires \(expires) is in the past") }
                until = time
            } else if let duration = Self.parseDuration(expires), duration > .zero {
                let (seconds, attoseconds) = duration.components
                until = now.addingTimeInterval(TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18)
            } else {
                throw ArgumentError(
                    message: "--expires must be an RFC 3339 time like 2025-06-01T12:00:00Z or a duration like 90m, 24h or 7d, found '\(expires)'"
                )
            }
        }
        return .add(Body(subject: subject, jti: jti, issuedBefore: before, expires: until))
    }

    /// An RFC 3339 date-time (`T` separator, `Z` or a numeric offset, optional fraction); nil otherwise.
    public static func parseTime(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }

    /// RFC 3339 in UTC, with a fraction only when the time has one.
    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if date.timeIntervalSince1970.rounded(.down) != date.timeIntervalSince1970 {
            formatter.formatOptions.insert(.withFractionalSeconds)
        }
        return formatter.string(from: date)
    }

    /// A configuration duration (`90m`, `24h`), or days (`7d`), the usual unit of a revocation's lifetime.
    static func parseDuration(_ text: String) -> Duration? {
        if text.hasSuffix("d"), let hours = ConfigValueParser.duration(String(text.dropLast()) + "h") {
            return hours * 24
        }
        return ConfigValueParser.duration(text)
    }

    /// The method, path and JSON body of an action.
    public static func httpRequest(for action: Action) -> (method: HTTPMethod, path: String, body: String?) {
        switch action {
        case .list:
            return (.GET, "/revocations", nil)
        case .delete(let id):
            return (.DELETE, "/revocations/\(id)", nil)
        case .add(let body):
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            // Encoding strings and optional strings cannot fail.
            let json = (try? encoder.encode(body)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            return (.POST, "/revocations", json)
        }
    }

    /// Sends `action` to the admin endpoint of the proxy configured by `config`.
    public static func send(_ action: Action, for config: ProxyConfig, environment: [String: String]) async -> Outcome {
        guard let bind = config.admin.bind else {
            return .failure("the configuration has no admin.bind: revocations are managed through the admin endpoint")
        }
        let token = config.admin.tokenEnv.flatMap { environment[$0] }
        let (method, path, body) = Self.httpRequest(for: action)
        do {
            let (status, answer) = try await AdminClient.request(
                method, path, to: bind, token: token, body: body.map { Array($0.utf8) } ?? [],
                contentType: body == nil ? nil : "application/json"
            )
            let text = answer.trimmingCharacters(in: .whitespacesAndNewlines)
            guard (200..<300).contains(status) else { return .failure("\(method) \(path) refused (\(status)): \(text)") }
            return .success(text)
        } catch {
            return .failure("cannot reach the admin endpoint \(bind): \(error)")
        }
    }
}
