/// Why a provider refused a token, from a fixed set.
///
/// The text goes into `WWW-Authenticate` (`error_description`), the refusal body and the log, so it is never built
/// from the token: a header field such as `alg` or `kid` holding CR LF would otherwise forge response headers.
enum TokenRejection: String, Sendable, Equatable, CaseIterable {
    case algorithmNotAccepted = "algorithm not accepted"
    case algorithmDoesNotFitKey = "algorithm does not match the key"
    case missingKeyID = "token has no kid"
    case unknownKeyID = "unknown key id"
    /// A remote key set has not been fetched yet (the identity provider is down or slow since start-up).
    case keysNotAvailable = "keys not available yet"
    case badSignature = "bad signature"
    case unverifiable = "token could not be verified"
    case expired = "token expired"
    case noExpiry = "token has no expiry"
    case notYetValid = "token not yet valid"
    case wrongIssuer = "wrong issuer"
    case wrongAudience = "wrong audience"
    case unknownToken = "unknown token"
    case unsafeClaims = "sub or scope claim holds control characters"
    case oversizedJTI = "jti claim longer than 256 bytes"
    /// A revocation in cluster mode matches the token.
    case revoked = "token revoked"
    /// The introspection endpoint answered `active: false` (unknown, expired or revoked there).
    case inactive = "token inactive"
    /// The introspection endpoint gave no usable answer and the provider's `on_error` is `unauthorized`.
    case introspectionFailed = "token could not be introspected"
}
