import Foundation

/// The TLS 1.2 cipher suites a context offers, by OpenSSL name (TLS 1.3 suites are fixed by BoringSSL).
///
/// Only exact suite names that BoringSSL implements are accepted, never OpenSSL aliases or operators (`HIGH`,
/// `!aNULL`): NIOSSL hands the string to `SSL_CTX_set_cipher_list` and traps when nothing matches, and BoringSSL
/// silently drops names it does not know, so a typo would otherwise either crash the proxy or quietly weaken it.
public struct CipherSuites: Sendable, Equatable {
    /// OpenSSL names, in preference order.
    public let names: [String]

    /// Mozilla's "intermediate" profile for TLS 1.2: ECDHE key exchange with AEAD ciphers only.
    public static let intermediate = CipherSuites(checkedNames: [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ])

    /// TLS 1.2 suites BoringSSL implements: OpenSSL name → IANA name (both are accepted in the configuration).
    static let known: [(openSSL: String, iana: String)] = [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        ("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
        ("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        ("ECDHE-PSK-CHACHA20-POLY1305", "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"),
        ("ECDHE-ECDSA-AES128-SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
        ("ECDHE-ECDSA-AES256-SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
        ("ECDHE-RSA-AES128-SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
        ("ECDHE-RSA-AES256-SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
        ("ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
        ("ECDHE-PSK-AES128-CBC-SHA", "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA"),
        ("ECDHE-PSK-AES256-CBC-SHA", "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA"),
        ("AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"),
        ("AES256-GCM-SHA384", "TLS_RSA_WITH_AES_256_GCM_SHA384"),
        ("AES128-SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"),
        ("AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA"),
        ("PSK-AES128-CBC-SHA", "TLS_PSK_WITH_AES_128_CBC_SHA"),
        ("PSK-AES256-CBC-SHA", "TLS_PSK_WITH_AES_256_CBC_SHA"),
        ("DES-CBC3-SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    ]

    static let tls13: Set<String> = [
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
    ]

    private init(checkedNames: [String]) {
        self.names = checkedNames
    }

    /// Validates `entries` (each one name, or several separated by `:`); the message says what is wrong.
    public init(parsing entries: [String]) throws(CipherSuitesError) {
        let names = entries.flatMap { $0.split(separator: ":", omittingEmptySubsequences: false) }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, !names.allSatisfy(\.isEmpty) else {
            throw CipherSuitesError("the cipher suite list is empty")
        }
        var result: [String] = []
        for name in names {
            guard !name.isEmpty else { throw CipherSuitesError("the cipher suite list has an empty entry") }
            if Self.tls13.contains(name.uppercased()) {
                throw CipherSuitesError("'\(name)' is a TLS 1.3 suite; TLS 1.3 suites are fixed and cannot be configured")
            }
            guard let entry = Self.known.first(where: { $0.openSSL == name.uppercased() || $0.iana == name.uppercased() }) else {
                if let first = name.first, "!+-@".contains(first) || name.contains("+") {
                    throw CipherSuitesError("'\(name)': list suite names only (OpenSSL operators and aliases are not accepted)")
                }
                throw CipherSuitesError("unknown TLS 1.2 cipher suite '\(name)'")
            }
            guard !result.contains(entry.openSSL) else { throw CipherSuitesError("cipher suite '\(name)' is listed twice") }
            result.append(entry.openSSL)
        }
        self.names = result
    }

    /// The OpenSSL cipher string for `TLSConfiguration.cipherSuites`.
    public var cipherString: String {
        self.names.joined(separator: ":")
    }
}

/// Why a cipher suite list was refused.
public struct CipherSuitesError: Error, Sendable {
    public let message: String

    init(_ message: String) {
        self.message = message
    }
}
