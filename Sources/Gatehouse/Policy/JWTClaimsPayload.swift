import Foundation
import JWTKit

/// The claims Gatehouse reads from a JWT. Claims are checked by ``JWTProvider`` (with leeway), not by jwt-kit.
struct JWTClaimsPayload: JWTPayload {
    var sub: String?
    var iss: String?
    var aud: [String]?
    var exp: Double?
    var nbf: Double?
    var iat: Double?
    var jti: String?
    var scopes: [String]

    private enum CodingKeys: String, CodingKey {
        case sub, iss, aud, exp, nbf, iat, jti, scope, scp
    }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.sub = try container.decodeIfPresent(String.self, forKey: .sub)
        self.iss = try container.decodeIfPresent(String.self, forKey: .iss)
        if let single = try? container.decodeIfPresent(String.self, forKey: .aud) {
            self.aud = [single]
        } else {
            self.aud = try container.decodeIfPresent([String].self, forKey: .aud)
        }
        self.exp = try container.decodeIfPresent(Double.self, forKey: .exp)
        self.nbf = try container.decodeIfPresent(Double.self, forKey: .nbf)
        // Read leniently: tokens with an odd `iat` or a non-string `jti` were accepted before these claims were
        // read, and still are (they just cannot be matched by those fields).
        self.iat = (try? container.decodeIfPresent(Double.self, forKey: .iat)) ?? nil
        self.jti = (try? container.decodeIfPresent(String.self, forKey: .jti)) ?? nil
        var scopes: [String] = []
        if let scope = try container.decodeIfPresent(String.self, forKey: .scope) {
            scopes += scope.split(separator: " ").map(String.init)
        }
        if let list = try? container.decodeIfPresent([String].self, forKey: .scp) {
            scopes += list
        } else if let text = try container.decodeIfPresent(String.self, forKey: .scp) {
            scopes += text.split(separator: " ").map(String.init)
        }
        self.scopes = scopes
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(self.sub, forKey: .sub)
        try container.encodeIfPresent(self.iss, forKey: .iss)
        try container.encodeIfPresent(self.aud, forKey: .aud)
        try container.encodeIfPresent(self.exp, forKey: .exp)
        try container.encodeIfPresent(self.nbf, forKey: .nbf)
        try container.encodeIfPresent(self.iat, forKey: .iat)
        try container.encodeIfPresent(self.jti, forKey: .jti)
        try container.encode(self.scopes.joined(separator: " "), forKey: .scope)
    }

    /// Nothing here: jwt-kit calls this after the signature check, and the claims are checked with leeway by the
    /// provider, which knows the configured issuer, audience and clock.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// The JOSE header fields Gatehouse checks before verifying a signature.
struct JWTHeaderFields: Decodable {
    var alg: String?
    var kid: String?

    /// Decodes the header of a compact JWT; nil when it is not one.
    static func parse(_ token: String) -> JWTHeaderFields? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, let data = Base64URL.decode(parts[0]) else { return nil }
        return try? JSONDecoder().decode(JWTHeaderFields.self, from: data)
    }
}

/// Base64url without padding (RFC 7515 §2).
enum Base64URL {
    static func decode<S: StringProtocol>(_ text: S) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        let remainder = base64.utf8.count % 4
        if remainder == 1 { return nil }
        if remainder > 0 { base64 += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: base64)
    }
}
