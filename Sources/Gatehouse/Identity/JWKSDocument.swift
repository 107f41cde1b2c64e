import Foundation
import JWTKit

/// A JSON Web Key Set read into the public keys a ``JWTProvider`` selects by `kid`; shared by `jwks_file` and
/// remote key sets.
///
/// A file is the operator's own: any key that cannot be used is an error at load. A remote set is the identity
/// provider's: it may publish encryption keys or key types Gatehouse does not verify, so those are skipped (and
/// named in ``skipped``) and only an answer with no usable key at all fails.
struct JWKSDocument: Sendable {
    enum Mode: Sendable {
        /// `jwks_file`: every key must be usable.
        case strict
        /// A fetched set: unusable keys are skipped.
        case lenient
    }

    /// Why a document (or, in strict mode, one of its keys) cannot be used; `message` names `source`.
    struct Problem: Error, Sendable {
        let message: String
    }

    /// Public keys by `kid`.
    let keys: [String: JWTProvider.PublicKey]
    /// Keys left out in lenient mode, each as "kid: reason" (bounded like the keys).
    let skipped: [String]

    /// More keys than any identity provider publishes (they rotate through two or three): the rest is ignored, so
    /// an answer cannot grow the map without bound.
    static let maxKeys = 100

    /// Parses `data`; `source` (a path or URL) prefixes every message.
    static func parse(_ data: [UInt8], source: String, mode: Mode) async throws(Problem) -> JWKSDocument {
        guard let object = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]]
        else {
            throw Problem(message: "\(source) is not a JWKS document (an object with a \"keys\" list)")
        }
        var result: [String: JWTProvider.PublicKey] = [:]
        var skipped: [String] = []
        for (index, key) in keys.enumerated() {
            guard result.count < Self.maxKeys else {
                if mode == .strict { throw Problem(message: "\(source): more than \(Self.maxKeys) keys") }
                skipped.append("keys after the first \(Self.maxKeys) are ignored")
                break
            }
            do throws(Problem) {
                let (kid, publicKey) = try await Self.publicKey(key, index: index, source: source, mode: mode)
                guard result[kid] == nil else { throw Problem(message: "\(source): duplicate kid '\(kid)'") }
                result[kid] = publicKey
            } catch {
                if mode == .strict { throw error }
                if skipped.count < Self.maxKeys { skipped.append(error.message) }
            }
        }
        return JWKSDocument(keys: result, skipped: skipped)
    }

    private static func publicKey(
        _ key: [String: Any], index: Int, source: String, mode: Mode
    ) async throws(Problem) -> (String, JWTProvider.PublicKey) {
        guard let kid = key["kid"] as? String, !kid.isEmpty else {
            throw Problem(message: "\(source): key \(index + 1) has no \"kid\"")
        }
        // The kid reaches logs and GET /auth: keep it printable and short.
        guard kid.utf8.count <= 256, kid.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f }) else {
            throw Problem(message: "\(source): key \(index + 1) has a kid with control characters or over 256 bytes")
        }
        guard let keyType = key["kty"] as? String, ["RSA", "EC", "OKP"].contains(keyType) else {
            throw Problem(message: "\(source): key '\(kid)' has an unsupported \"kty\" (RSA, EC and OKP are supported)")
        }
        if key["d"] != nil {
            throw Problem(message: "\(source): key '\(kid)' holds a private key; publish only public keys")
        }
        // Identity providers publish encryption keys beside signing keys (Keycloak's RSA-OAEP key).
        if mode == .lenient, let use = key["use"] as? String, use != "sig" {
            throw Problem(message: "\(source): key '\(kid)' is for \"use\": \"\(use)\", not signatures")
        }
        do {
            let single = try JSONSerialization.data(withJSONObject: ["keys": [key]])
            let collection = try await JWTKeyCollection().add(jwksJSON: String(decoding: single, as: UTF8.self))
            return (kid, JWTProvider.PublicKey(keys: collection, keyType: keyType, algorithm: key["alg"] as? String, curve: key["crv"] as? String))
        } catch {
            throw Problem(message: "\(source): key '\(kid)' is not a valid JWK: \(error)")
        }
    }
}
