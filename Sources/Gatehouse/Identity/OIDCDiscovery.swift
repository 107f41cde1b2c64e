import Foundation

/// What Gatehouse takes from an OpenID Connect discovery document (`/.well-known/openid-configuration`): the
/// issuer, which must be exactly the configured `oidc_issuer` (OpenID Connect Discovery 1.0 §4.3), and the
/// `jwks_uri`, which must be fetchable under the same rules as `jwks_url`.
struct OIDCDiscovery: Sendable, Equatable {
    let issuer: String
    let jwksURI: String

    /// Why a document cannot be used.
    enum Problem: Error, Sendable, Equatable {
        /// Not a JSON object: likely an error page or a proxy in the way, so worth retrying.
        case notJSON
        /// A JSON object without `issuer` or `jwks_uri`.
        case missing(String)
        /// The document speaks for another issuer: a configuration error, never retried into success.
        case issuerMismatch(expected: String, found: String)
        /// `jwks_uri` is not https (or http to a loopback host).
        case jwksURINotAllowed(String)

        /// Whether the problem is the configuration's (refuse to start) rather than the provider's state (retry).
        var isConfigurationError: Bool {
            switch self {
            case .notJSON: return false
            case .missing, .issuerMismatch, .jwksURINotAllowed: return true
            }
        }

        func message(url: String) -> String {
            switch self {
            case .notJSON:
                return "\(url) is not a JSON object"
            case .missing(let member):
                return "the discovery document at \(url) has no \"\(member)\""
            case .issuerMismatch(let expected, let found):
                return "the discovery document at \(url) names issuer '\(found)', but oidc_issuer is '\(expected)'; "
                    + "they must be equal, character for character (OpenID Connect Discovery 1.0 §4.3)"
            case .jwksURINotAllowed(let problem):
                return "the discovery document at \(url): \(problem)"
            }
        }
    }

    /// Reads `body` and checks it against `expectedIssuer`.
    static func parse(_ body: [UInt8], expectedIssuer: String) throws(Problem) -> OIDCDiscovery {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { throw .notJSON }
        guard let issuer = object["issuer"] as? String else { throw .missing("issuer") }
        guard issuer == expectedIssuer else {
            throw .issuerMismatch(expected: expectedIssuer, found: Self.printable(issuer))
        }
        guard let jwksURI = object["jwks_uri"] as? String, !jwksURI.isEmpty else { throw .missing("jwks_uri") }
        if let problem = JWTProviderConfig.Remote.urlProblem(jwksURI, key: "jwks_uri") {
            throw .jwksURINotAllowed(Self.printable(problem))
        }
        return OIDCDiscovery(issuer: issuer, jwksURI: jwksURI)
    }

    /// Text from the document, made safe for an error message and a log line.
    private static func printable(_ text: String) -> String {
        let cut = LogEscaping.truncated(text, maxBytes: 200)
        return String(String.UnicodeScalarView(cut.unicodeScalars.map { LogEscaping.mustEscape($0) ? "?" : $0 }))
    }
}
