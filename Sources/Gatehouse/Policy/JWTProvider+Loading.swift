import Foundation
import JWTKit

extension JWTProvider {
    /// Builds a provider from its configuration: reads the HMAC secret from the environment and the JWKS file.
    /// Reads a file: call off the event loops.
    static func load(_ config: JWTProviderConfig, name: String, environment: [String: String]) async throws(ConfigError) -> JWTProvider {
        var hmac: [String: JWTKeyCollection] = [:]
        if let variable = config.secretEnv, let position = config.secretEnvPosition {
            guard let secret = environment[variable], !secret.isEmpty else {
                throw position.error("environment variable \(variable) (secret_env of auth provider '\(name)') is not set")
            }
            for algorithm in config.algorithms where algorithm.hasPrefix("HS") {
                // RFC 7518 §3.2: the key must be at least as long as the hash output.
                let (digest, minimum): (DigestAlgorithm, Int) =
                    algorithm == "HS256" ? (.sha256, 32) : algorithm == "HS384" ? (.sha384, 48) : (.sha512, 64)
                guard secret.utf8.count >= minimum else {
                    throw position.error("the HMAC secret in \(variable) is shorter than \(minimum) bytes, the minimum for \(algorithm)")
                }
                hmac[algorithm] = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: digest)
            }
        }
        var publicKeys: [String: PublicKey] = [:]
        if let path = config.jwksFile, let position = config.jwksFilePosition {
            publicKeys = try await Self.loadJWKS(path: path, position: position)
        }
        return JWTProvider(name: name, config: config, hmac: hmac, publicKeys: publicKeys)
    }

    private static func loadJWKS(path: String, position: ConfigPosition) async throws(ConfigError) -> [String: PublicKey] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw position.error("cannot read JWKS file \(path): \(ConfigLoader.describe(error))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let keys = object["keys"] as? [[String: Any]]
        else {
            throw position.error("\(path) is not a JWKS document (an object with a \"keys\" list)")
        }
        var result: [String: PublicKey] = [:]
        for (index, key) in keys.enumerated() {
            guard let kid = key["kid"] as? String, !kid.isEmpty else {
                throw position.error("\(path): key \(index + 1) has no \"kid\"")
            }
            guard let keyType = key["kty"] as? String, ["RSA", "EC", "OKP"].contains(keyType) else {
                throw position.error("\(path): key '\(kid)' has an unsupported \"kty\" (RSA, EC and OKP are supported)")
            }
            if key["d"] != nil {
                throw position.error("\(path): key '\(kid)' holds a private key; publish only public keys")
            }
            guard result[kid] == nil else { throw position.error("\(path): duplicate kid '\(kid)'") }
            do {
                let single = try JSONSerialization.data(withJSONObject: ["keys": [key]])
                let collection = try await JWTKeyCollection().add(jwksJSON: String(decoding: single, as: UTF8.self))
                result[kid] = PublicKey(keys: collection, keyType: keyType, algorithm: key["alg"] as? String, curve: key["crv"] as? String)
            } catch {
                throw position.error("\(path): key '\(kid)' is not a valid JWK: \(error)")
            }
        }
        return result
    }
}
