import Foundation

/// Who a token says the client is, once a provider accepted it.
public struct AuthIdentity: Sendable, Equatable {
    /// `sub` of a JWT, or the name of a static token.
    public var subject: String?
    /// Scopes granted (`scope` or `scp` of a JWT; none for static tokens).
    public var scopes: [String]
    /// Name of the provider that accepted the token.
    public var provider: String
    /// When the token stops being honoured (`exp` plus leeway); nil when it does not expire.
    public var expiresAt: Date?
    /// `jti` of a JWT (at most ``maxJTIBytes``; longer ones are refused), the key of a revocation by token id;
    /// nil for static tokens and JWTs without one.
    public var jti: String? = nil
    /// `iat` of a JWT, compared with a revocation's `issued_before`; nil for static tokens and JWTs without one.
    public var issuedAt: Date? = nil

    /// Longest `jti` accepted: real ones are UUIDs or similar, and a revocation must be able to name every
    /// accepted token, so a longer one is refused rather than ignored.
    public static let maxJTIBytes = 256
}

/// A provider's verdict on a token.
enum AuthVerdict: Sendable {
    /// The token is valid.
    case accepted(AuthIdentity)
    /// The token is meant for this provider but is not valid; the reason is from a fixed set, safe to send and log.
    case rejected(TokenRejection)
    /// The token is not of this provider's kind (a static provider never heard of it, a JWT provider got a non-JWT).
    case notApplicable
    /// The provider cannot decide now (its identity provider is down and its policy says 503, not 401); the reason
    /// is from a fixed set, safe to send and log.
    case unavailable(String)
}

/// A source of truth for bearer tokens.
protocol AuthProvider: Sendable {
    /// The provider's name.
    var name: String { get }
    /// Verifies `token` at `now`.
    func verify(_ token: String, now: Date) async -> AuthVerdict
    /// What `GET /auth` shows of the provider (never a secret or a token).
    func state() async -> AuthProviderState
}

/// A provider's state for the admin API: its name, type and a few facts (key ids, fetch times, last error).
struct AuthProviderState: Sendable {
    var name: String
    var type: String
    /// JSON-serialisable facts (strings, numbers, booleans, lists of strings, nil as null).
    var details: [String: any Sendable] = [:]
}

extension AuthProvider {
    func state() async -> AuthProviderState {
        AuthProviderState(name: self.name, type: "\(Self.self)")
    }
}
