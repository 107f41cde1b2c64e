import Foundation

/// What an introspection endpoint said about a token (RFC 7662 §2.2), once read.
enum IntrospectionAnswer: Sendable, Equatable {
    /// `active: true`, with the claims that matter here.
    case active(IntrospectionClaims)
    /// `active` is anything but `true`: the token is unknown, expired, revoked or not for this client.
    case inactive
}

/// The claims of an active answer.
struct IntrospectionClaims: Sendable, Equatable {
    /// `sub`, or `username` when the answer has no `sub`.
    var subject: String?
    /// `scope`, split on spaces.
    var scopes: [String] = []
    var expiresAt: Date?
    var issuedAt: Date?
    var jti: String?
    var clientID: String?
    var issuer: String?
    /// `aud`, a string or a list of strings.
    var audience: [String] = []
}

/// Reads an introspection answer body.
///
/// `active` must be present (an answer without it is not an introspection answer); only the JSON value `true`
/// means active, so `"true"`, `1` or `null` are inactive. In an active answer a claim of the wrong type makes the
/// whole answer malformed rather than being ignored: a dropped `exp` would make the token live forever.
enum IntrospectionResponse {
    /// The answer, or nil when the body is not an introspection answer.
    static func parse(_ bytes: some Sequence<UInt8>) -> IntrospectionAnswer? {
        guard let payload = try? JSONDecoder().decode(Payload.self, from: Data(bytes)) else { return nil }
        return payload.answer
    }

    private struct Payload: Decodable {
        let answer: IntrospectionAnswer

        enum CodingKeys: String, CodingKey {
            case active, sub, username, scope, exp, iat, jti, client_id, iss, aud
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard container.contains(.active) else {
                throw DecodingError.keyNotFound(CodingKeys.active, .init(codingPath: [], debugDescription: "no active"))
            }
            guard (try? container.decode(Bool.self, forKey: .active)) == true else {
                self.answer = .inactive
                return
            }
            var claims = IntrospectionClaims()
            claims.subject = try container.decodeIfPresent(String.self, forKey: .sub)
                ?? container.decodeIfPresent(String.self, forKey: .username)
            if let scope = try container.decodeIfPresent(String.self, forKey: .scope) {
                claims.scopes = scope.split(separator: " ").map(String.init)
            }
            claims.expiresAt = try Self.time(container, .exp)
            claims.issuedAt = try Self.time(container, .iat)
            claims.jti = try container.decodeIfPresent(String.self, forKey: .jti)
            claims.clientID = try container.decodeIfPresent(String.self, forKey: .client_id)
            claims.issuer = try container.decodeIfPresent(String.self, forKey: .iss)
            if let single = try? container.decodeIfPresent(String.self, forKey: .aud) {
                claims.audience = [single]
            } else {
                claims.audience = try container.decodeIfPresent([String].self, forKey: .aud) ?? []
            }
            self.answer = .active(claims)
        }

        /// A NumericDate (seconds since the epoch), refused when it is not a plausible time.
        private static func time(_ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Date? {
            guard let seconds = try container.decodeIfPresent(Double.self, forKey: key) else { return nil }
            guard seconds.isFinite, seconds >= 0, seconds < 253_402_300_800 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not a time")
            }
            return Date(timeIntervalSince1970: seconds)
        }
    }
}

extension IntrospectionAnswer {
    /// The verdict on a token this answer is about, at `now`: inactive answers, answers past their `exp` and
    /// answers failing the provider's `issuer` / `audience` are refused.
    func verdict(provider: String, issuer: String?, audience: String?, now: Date) -> AuthVerdict {
        guard case .active(let claims) = self else { return .rejected(.inactive) }
        if let expiresAt = claims.expiresAt, expiresAt <= now { return .rejected(.expired) }
        if let issuer, claims.issuer != issuer { return .rejected(.wrongIssuer) }
        if let audience, !claims.audience.contains(audience) { return .rejected(.wrongAudience) }
        if let jti = claims.jti, jti.utf8.count > AuthIdentity.maxJTIBytes { return .rejected(.oversizedJTI) }
        return .accepted(
            AuthIdentity(
                subject: claims.subject, scopes: claims.scopes, provider: provider, expiresAt: claims.expiresAt, jti: claims.jti,
                issuedAt: claims.issuedAt
            )
        )
    }
}
