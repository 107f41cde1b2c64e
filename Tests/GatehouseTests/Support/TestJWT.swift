import Crypto
import CryptoExtras
import Foundation
import JWTKit

/// Claims a test signs into a token.
struct TestClaims: JWTPayload {
    var sub: String?
    var iss: String?
    var aud: [String]?
    var exp: Double?
    var nbf: Double?
    var scope: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {}

    static func valid(sub: String = "alice", scope: String? = nil, expiresIn: Double = 3600) -> TestClaims {
        TestClaims(sub: sub, iss: nil, aud: nil, exp: Date().timeIntervalSince1970 + expiresIn, nbf: nil, scope: scope)
    }
}

/// Keys of every algorithm family, their JWKS, and signing.
struct TestKeys: Sendable {
    static let secret = "a-test-hmac-secret-that-is-long-enough-for-hs512-0123456789abcdefghij"
    /// One set for the whole run: RSA key generation is slow in debug builds, and dozens of fixtures generating
    /// keys at once starve the proxy's verification tasks on a two-core machine.
    static let shared = Result { try TestKeys.make() }
    let rsa: _RSA.Signing.PrivateKey
    let p256: P256.Signing.PrivateKey
    let p384: P384.Signing.PrivateKey
    let ed25519: Curve25519.Signing.PrivateKey
    let rsa2: _RSA.Signing.PrivateKey

    static func make() throws -> TestKeys {
        TestKeys(
            rsa: try _RSA.Signing.PrivateKey(keySize: .bits2048), p256: P256.Signing.PrivateKey(),
            p384: P384.Signing.PrivateKey(), ed25519: Curve25519.Signing.PrivateKey(),
            rsa2: try _RSA.Signing.PrivateKey(keySize: .bits2048)
        )
    }

    private static func b64(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    private static func rsaJWK(_ key: _RSA.Signing.PrivateKey, kid: String) throws -> [String: String] {
        let primitives = try Insecure.RSA.PublicKey(backing: key.publicKey).getKeyPrimitives()
        return ["kty": "RSA", "kid": kid, "n": b64(primitives.modulus), "e": b64(primitives.publicExponent)]
    }

    /// A JWKS with every public key: `rsa` and `rsa2` (two RSA keys told apart by kid), `p256`, `p384`, `ed`.
    func jwks() throws -> String {
        let p256 = self.p256.publicKey.x963Representation
        let p384 = self.p384.publicKey.x963Representation
        let keys: [[String: String]] = [
            try Self.rsaJWK(self.rsa, kid: "rsa"),
            try Self.rsaJWK(self.rsa2, kid: "rsa2"),
            ["kty": "EC", "kid": "p256", "crv": "P-256", "x": Self.b64(p256[1..<33]), "y": Self.b64(p256[33..<65])],
            ["kty": "EC", "kid": "p384", "crv": "P-384", "x": Self.b64(p384[1..<49]), "y": Self.b64(p384[49..<97])],
            ["kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": Self.b64(self.ed25519.publicKey.rawRepresentation)],
        ]
        let data = try JSONSerialization.data(withJSONObject: ["keys": keys])
        return String(decoding: data, as: UTF8.self)
    }

    /// Signs `claims` with `algorithm` (and for asymmetric algorithms the key `kid`, default per family).
    func sign(_ claims: TestClaims, algorithm: String, kid: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        var signingKid: String? = kid
        switch algorithm {
        case "HS256": await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha256)
        case "HS384": await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha384)
        case "HS512": await keys.add(hmac: HMACKey(from: Self.secret), digestAlgorithm: .sha512)
        case "RS256", "RS384", "RS512":
            let key = try Insecure.RSA.PrivateKey(backing: kid == "rsa2" ? self.rsa2 : self.rsa)
            let digest: DigestAlgorithm = algorithm == "RS256" ? .sha256 : algorithm == "RS384" ? .sha384 : .sha512
            signingKid = kid ?? "rsa"
            await keys.add(rsa: key, digestAlgorithm: digest)
        case "PS256":
            signingKid = kid ?? "rsa"
            await keys.add(pss: try Insecure.RSA.PrivateKey(backing: self.rsa), digestAlgorithm: .sha256)
        case "ES256":
            signingKid = kid ?? "p256"
            await keys.add(ecdsa: try ES256PrivateKey(backing: self.p256))
        case "ES384":
            signingKid = kid ?? "p384"
            await keys.add(ecdsa: try ES384PrivateKey(backing: self.p384))
        case "EdDSA":
            signingKid = kid ?? "ed"
            await keys.add(eddsa: EdDSA.PrivateKey(backing: self.ed25519))
        default:
            throw TestError("no signer for \(algorithm)")
        }
        // The signing key is the collection's default; the kid only goes into the header.
        var header = JWTHeader()
        header.kid = signingKid
        return try await keys.sign(claims, header: header)
    }

    /// A token with an arbitrary header, signed with HMAC-SHA256 over `secret` (for `none` and confusion attacks).
    static func forged(header: [String: String], claims: TestClaims, secret: [UInt8]?) throws -> String {
        let headerPart = b64(try JSONSerialization.data(withJSONObject: header))
        let claimsPart = b64(try JSONEncoder().encode(claims))
        let input = "\(headerPart).\(claimsPart)"
        guard let secret else { return input + "." }
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: secret))
        return input + "." + b64(Data(mac))
    }

    /// PEM of the RSA public key (what an attacker would use as an HMAC secret).
    var rsaPublicPEM: String {
        self.rsa.publicKey.pemRepresentation
    }
}
