import Foundation
import JWTKit

/// Verifies JSON Web Tokens with jwt-kit: HMAC secrets and JWKS public keys (from a file, or fetched and kept
/// fresh by a ``RemoteJWKS``), a fixed list of algorithms, `kid` matching, issuer, audience and time claims with
/// leeway.
///
/// The algorithm a token claims must be in the configured list and fit the key it names, so `alg: none` and
/// algorithm confusion (an HS token checked against an RSA public key) are refused before any signature check.
final class JWTProvider: AuthProvider {
    /// A public key from the JWKS with what is needed to check a token's `alg` against it.
    struct PublicKey: Sendable {
        let keys: JWTKeyCollection
        let keyType: String
        let algorithm: String?
        let curve: String?
    }

    /// Where public keys come from.
    enum KeySource: Sendable {
        /// `jwks_file` (or no public keys: HS algorithms only).
        case fixed([String: PublicKey], file: String?)
        /// `jwks_url` / `oidc_issuer`.
        case remote(RemoteJWKS)
        /// `jwks_url` / `oidc_issuer` where nothing is fetched (`gatehouse check`): no key is ever available.
        case notFetched(String)
    }

    let name: String
    private let algorithms: Set<String>
    private let hmac: [String: JWTKeyCollection]
    private let keySource: KeySource
    private let issuer: String?
    private let audience: String?
    private let leeway: TimeInterval
    private let requireExpiry: Bool

    convenience init(name: String, config: JWTProviderConfig, hmac: [String: JWTKeyCollection], publicKeys: [String: PublicKey]) {
        self.init(name: name, config: config, hmac: hmac, keySource: .fixed(publicKeys, file: config.jwksFile))
    }

    init(name: String, config: JWTProviderConfig, hmac: [String: JWTKeyCollection], keySource: KeySource) {
        self.name = name
        self.algorithms = Set(config.algorithms)
        self.hmac = hmac
        self.keySource = keySource
        self.issuer = config.issuer
        self.audience = config.audience
        self.requireExpiry = config.requireExpiry
        let (seconds, attoseconds) = config.leeway.components
        self.leeway = TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }

    func verify(_ token: String, now: Date) async -> AuthVerdict {
        guard let header = JWTHeaderFields.parse(token) else { return .notApplicable }
        guard let algorithm = header.alg, algorithm != "none", self.algorithms.contains(algorithm) else {
            return .rejected(.algorithmNotAccepted)
        }
        let keys: JWTKeyCollection
        if algorithm.hasPrefix("HS") {
            guard let secret = self.hmac[algorithm] else { return .rejected(.algorithmNotAccepted) }
            keys = secret
        } else {
            let key: PublicKey
            switch await self.publicKey(for: header.kid) {
            case .key(let found): key = found
            case .unknown: return .rejected(header.kid == nil ? .missingKeyID : .unknownKeyID)
            case .notLoaded: return .rejected(.keysNotAvailable)
            }
            guard Self.algorithm(algorithm, fits: key) else {
                return .rejected(.algorithmDoesNotFitKey)
            }
            keys = key.keys
        }
        let claims: JWTClaimsPayload
        do {
            claims = try await keys.verify(token, as: JWTClaimsPayload.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .rejected(.badSignature)
        } catch {
            return .rejected(.unverifiable)
        }
        return self.check(claims, now: now)
    }

    private func publicKey(for kid: String?) async -> RemoteJWKS.Lookup {
        switch self.keySource {
        case .fixed(let keys, _):
            if let kid { return keys[kid].map { .key($0) } ?? .unknown }
            // Without a kid the key is unambiguous only when there is one.
            return keys.count == 1 ? keys.values.first.map { .key($0) } ?? .unknown : .unknown
        case .remote(let remote):
            return await remote.key(for: kid)
        case .notFetched:
            return .notLoaded
        }
    }

    /// `GET /auth`: algorithms, where keys come from and which key ids are held; never the HMAC secret.
    func state() async -> AuthProviderState {
        var details: [String: any Sendable] = ["algorithms": self.algorithms.sorted()]
        if let issuer = self.issuer { details["issuer"] = issuer }
        switch self.keySource {
        case .fixed(let keys, let file):
            if let file { details["jwks_file"] = file }
            if !keys.isEmpty || file != nil { details["key_ids"] = keys.keys.sorted() }
        case .remote(let remote):
            let snapshot = remote.snapshot
            details["source"] = snapshot.source
            details["jwks_url"] = snapshot.jwksURL as any Sendable
            details["key_ids"] = snapshot.keyIDs
            details["fetched_at"] = snapshot.fetchedAt.map(Self.timestamp) as any Sendable
            details["next_refresh"] = snapshot.nextRefresh.map(Self.timestamp) as any Sendable
            details["expires_at"] = snapshot.expiresAt.map(Self.timestamp) as any Sendable
            details["last_error"] = snapshot.lastError as any Sendable
            details["last_error_at"] = snapshot.lastErrorAt.map(Self.timestamp) as any Sendable
            details["consecutive_failures"] = snapshot.consecutiveFailures
            details["skipped_keys"] = snapshot.skipped
        case .notFetched(let source):
            details["source"] = source
            details["key_ids"] = [String]()
        }
        return AuthProviderState(name: self.name, type: "jwt", details: details)
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    private static func algorithm(_ algorithm: String, fits key: PublicKey) -> Bool {
        if let declared = key.algorithm, declared != algorithm { return false }
        switch algorithm {
        case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512": return key.keyType == "RSA"
        case "ES256": return key.keyType == "EC" && key.curve == "P-256"
        case "ES384": return key.keyType == "EC" && key.curve == "P-384"
        case "EdDSA": return key.keyType == "OKP" && key.curve == "Ed25519"
        default: return false
        }
    }

    private func check(_ claims: JWTClaimsPayload, now: Date) -> AuthVerdict {
        let time = now.timeIntervalSince1970
        // Without exp a token is valid forever and live expiry never fires: refused unless `require_exp: false`.
        if claims.exp == nil && self.requireExpiry { return .rejected(.noExpiry) }
        if let exp = claims.exp, time > exp + self.leeway { return .rejected(.expired) }
        if let nbf = claims.nbf, time + self.leeway < nbf { return .rejected(.notYetValid) }
        if let issuer = self.issuer, claims.iss != issuer { return .rejected(.wrongIssuer) }
        if let audience = self.audience, !(claims.aud ?? []).contains(audience) { return .rejected(.wrongAudience) }
        if let jti = claims.jti, jti.utf8.count > AuthIdentity.maxJTIBytes { return .rejected(.oversizedJTI) }
        return .accepted(
            AuthIdentity(
                subject: claims.sub, scopes: claims.scopes, provider: self.name,
                expiresAt: claims.exp.map { Date(timeIntervalSince1970: $0 + self.leeway) },
                jti: claims.jti, issuedAt: claims.iat.flatMap { $0.isFinite ? Date(timeIntervalSince1970: $0) : nil }
            )
        )
    }
}
