import Foundation
import JWTKit

extension JWTProvider {
    /// Builds a provider from its configuration: reads the HMAC secret from the environment and the JWKS file, or
    /// takes its remote key set from `identity` (nil where nothing may be fetched: `gatehouse check`).
    /// Reads files: call off the event loops.
    static func load(
        _ config: JWTProviderConfig, name: String, environment: [String: String], identity: IdentityRuntime? = nil
    ) async throws(ConfigError) -> JWTProvider {
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
        if let remote = config.remote {
            guard let identity else {
                return JWTProvider(name: name, config: config, hmac: hmac, keySource: .notFetched(remote.url))
            }
            let keySet = try await identity.keySet(provider: name, remote: remote, position: remote.position)
            return JWTProvider(name: name, config: config, hmac: hmac, keySource: .remote(keySet))
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
        do {
            return try await JWKSDocument.parse([UInt8](data), source: path, mode: .strict).keys
        } catch {
            throw position.error(error.message)
        }
    }
}
