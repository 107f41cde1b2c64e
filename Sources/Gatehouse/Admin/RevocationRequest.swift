import Foundation
import GatehouseCluster

/// The body of `POST /revocations`: `{"subject": "alice"}`, `{"jti": "..."}` or
/// `{"subject": "alice", "issued_before": "RFC 3339"}`, each with an optional `"expires"` (RFC 3339; default: never,
/// since the proxy cannot know how long the tokens it matches stay valid).
///
/// Every key is checked: an unknown key is an error, not ignored, since a misspelt `isued_before` would revoke far
/// more than meant.
enum RevocationRequest {
    struct Problem: Error, Equatable {
        let message: String
    }

    /// Stands for "never expires" (stored as a date the database and every node can compare).
    static let never = Date(timeIntervalSince1970: 253_402_300_799)  // 9999-12-31T23:59:59Z
    /// Longest subject or jti accepted (JWT claims of this proxy are bounded the same way).
    static let maxFieldBytes = 256

    static func parse(_ body: [UInt8], now: Date) -> Result<NewRevocation, Problem> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)), let fields = object as? [String: Any] else {
            return .failure(Problem(message: "the body must be a JSON object such as {\"subject\": \"alice\"}"))
        }
        let known: Set<String> = ["subject", "jti", "issued_before", "expires"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            return .failure(Problem(message: "unknown key '\(unknown)' (keys: subject, jti, issued_before, expires)"))
        }
        var subject: String?
        var jti: String?
        var issuedBefore: Date?
        var expires = Self.never
        do {
            subject = try Self.field(fields["subject"], "subject")
            jti = try Self.field(fields["jti"], "jti")
            issuedBefore = try Self.time(fields["issued_before"], "issued_before")
            if let given = try Self.time(fields["expires"], "expires") {
                guard given > now else { throw Problem(message: "expires must be in the future") }
                expires = given
            }
        } catch let problem as Problem {
            return .failure(problem)
        } catch {
            return .failure(Problem(message: "\(error)"))
        }
        guard subject != nil || jti != nil else {
            return .failure(Problem(message: "a revocation needs \"subject\" or \"jti\""))
        }
        return .success(NewRevocation(subject: subject, jti: jti, issuedBefore: issuedBefore, expires: expires))
    }

    private static func field(_ value: Any?, _ name: String) throws -> String? {
        guard let value, !(value is NSNull) else { return nil }
        guard let text = value as? String, !text.isEmpty, text.utf8.count <= Self.maxFieldBytes,
            text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw Problem(message: "\(name) must be a string of 1 to \(Self.maxFieldBytes) bytes without control characters")
        }
        return text
    }

    private static func time(_ value: Any?, _ name: String) throws -> Date? {
        guard let value, !(value is NSNull) else { return nil }
        guard let text = value as? String, let date = RevokeRequest.parseTime(text) else {
            throw Problem(message: "\(name) must be an RFC 3339 time such as 2026-11-29T12:00:00Z")
        }
        return date
    }

    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
