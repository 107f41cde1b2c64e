import Foundation

/// A `postgres://` (or `postgresql://`) connection URL, parsed and checked without connecting.
///
/// `postgres://user:password@host:port/database?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=gh`.
/// User, password, database and parameter values are percent-decoded; reserved characters in them (`@ / ? # % :`)
/// must be percent-encoded, as libpq requires (an unencoded `@` in the password is tolerated). The port defaults to
/// 5432 and the database to the user name; IPv6 hosts are written in brackets.
///
/// The password never appears in ``description``, in a mirror or in a ``PostgresURLError``.
public struct PostgresURL: Sendable, Equatable {
    /// How the connection uses TLS; the names and the default are libpq's.
    public enum SSLMode: String, Sendable, Equatable, CaseIterable {
        /// Never TLS.
        case disable
        /// TLS when the server offers it, without verifying the certificate (libpq's default).
        case prefer
        /// TLS or no connection, without verifying the certificate.
        case require
        /// TLS, certificate signed by a trusted CA (`sslrootcert`, else the system roots); the host name is not checked.
        case verifyCA = "verify-ca"
        /// TLS, trusted certificate, and the host name (or IP) must match it.
        case verifyFull = "verify-full"

        /// Whether the server's certificate is checked against trusted roots.
        public var verifiesCertificate: Bool { self == .verifyCA || self == .verifyFull }
    }

    /// Query parameters understood (anything else is refused, so a misspelt `sslmode` cannot silently disable TLS).
    public static let knownParameters = ["sslmode", "sslrootcert", "application_name"]

    /// Host name or IP address (IPv6 without brackets).
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    /// The database to open; the user name when the URL names none.
    public var database: String
    public var sslMode: SSLMode
    /// PEM file of the CAs to trust (`verify-ca`, `verify-full`); nil for the system roots.
    public var sslRootCert: String?
    /// Reported to the server (`pg_stat_activity.application_name`).
    public var applicationName: String?

    public init(
        host: String, port: Int = 5432, username: String, password: String?, database: String? = nil,
        sslMode: SSLMode = .prefer, sslRootCert: String? = nil, applicationName: String? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database ?? username
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
        self.applicationName = applicationName
    }

    /// Parses `string`; errors say what is wrong without repeating the user information.
    public init(_ string: String) throws(PostgresURLError) {
        let lowered = string.lowercased()
        let rest: Substring
        if lowered.hasPrefix("postgres://") {
            rest = string.dropFirst("postgres://".count)
        } else if lowered.hasPrefix("postgresql://") {
            rest = string.dropFirst("postgresql://".count)
        } else {
            throw .scheme
        }

        // The user information ends at the last '@' before the path, so an unencoded '@' in the password still
        // parses. An '@' after that '/' means a '/' in the password was not encoded: refuse rather than guess (and
        // rather than quote part of the password as a host or a database).
        let pathStart = rest.firstIndex(of: "/") ?? rest.endIndex
        let head = rest[..<pathStart]
        var tail = rest[pathStart...]
        var authority = head
        var userInfo: Substring?
        if let at = head.lastIndex(of: "@") {
            userInfo = head[..<at]
            authority = head[head.index(after: at)...]
        }
        if tail.contains("@") { throw .unencodedUserInfo }
        // Without a path, the query may follow the host directly.
        if let question = authority.firstIndex(of: "?") {
            tail = rest[question...]
            authority = authority[..<question]
        }
        if tail.contains("#") { throw .fragment }

        guard let userInfo, !userInfo.isEmpty else { throw .missingUser }
        let rawUser: Substring
        var rawPassword: Substring?
        if let colon = userInfo.firstIndex(of: ":") {
            rawUser = userInfo[..<colon]
            rawPassword = userInfo[userInfo.index(after: colon)...]
        } else {
            rawUser = userInfo
        }
        guard let username = Self.percentDecoded(rawUser) else { throw .encoding(.user) }
        guard !username.isEmpty else { throw .missingUser }
        var password: String?
        if let rawPassword {
            guard let decoded = Self.percentDecoded(rawPassword) else { throw .encoding(.password) }
            password = decoded
        }

        let (host, port) = try Self.hostAndPort(authority)

        var path = tail
        var query: Substring = ""
        if let question = tail.firstIndex(of: "?") {
            path = tail[..<question]
            query = tail[tail.index(after: question)...]
        }
        var database = username
        if path.hasPrefix("/") { path = path.dropFirst() }
        if !path.isEmpty {
            guard !path.contains("/") else { throw .invalidDatabase }
            guard let decoded = Self.percentDecoded(path) else { throw .encoding(.database) }
            database = decoded
        }

        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            guard Self.knownParameters.contains(name) else {
                throw .unknownParameter(Self.printable(name))
            }
            guard parameters[name] == nil else { throw .duplicateParameter(name) }
            guard parts.count == 2, let value = Self.percentDecoded(parts[1]), !value.isEmpty else {
                throw .emptyParameter(name)
            }
            parameters[name] = value
        }

        // Secure by default, unlike libpq's `prefer`: a database across a network is reached over verified TLS
        // unless the URL says otherwise; only loopback, which no one on the path can impersonate, may go without.
        var sslMode = LoopbackHost.contains(host) ? SSLMode.prefer : SSLMode.verifyFull
        if let value = parameters["sslmode"] {
            guard let mode = SSLMode(rawValue: value) else { throw .sslMode(Self.printable(value)) }
            sslMode = mode
        }
        let rootCert = parameters["sslrootcert"]
        // libpq quietly upgrades `require` to `verify-ca` when a root certificate exists; say it instead.
        if rootCert != nil, !sslMode.verifiesCertificate { throw .rootCertWithoutVerification }

        self.init(
            host: host, port: port, username: username, password: password, database: database, sslMode: sslMode,
            sslRootCert: rootCert, applicationName: parameters["application_name"]
        )
    }

    /// The URL with the password replaced by `***` (for logs and error messages).
    public var redacted: String {
        var text = "postgres://" + Self.encoded(self.username)
        if self.password != nil { text += ":***" }
        text += "@" + (self.host.contains(":") ? "[\(self.host)]" : self.host) + ":\(self.port)/" + Self.encoded(self.database)
        var parameters = ["sslmode=\(self.sslMode.rawValue)"]
        if let sslRootCert { parameters.append("sslrootcert=\(Self.encoded(sslRootCert))") }
        if let applicationName { parameters.append("application_name=\(Self.encoded(applicationName))") }
        return text + "?" + parameters.joined(separator: "&")
    }

    private static func hostAndPort(_ authority: Substring) throws(PostgresURLError) -> (String, Int) {
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidHost }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidHost }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }), host.contains(":") else {
                throw .invalidHost
            }
        } else {
            host = authority
            if let colon = authority.firstIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            }
            guard !host.isEmpty else { throw .missingHost }
            guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_") })
            else { throw .invalidHost }
        }
        var port = 5432
        if let portText {
            guard portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(portText),
                (1...65535).contains(value)
            else { throw .invalidPort }
            port = value
        }
        return (String(host), port)
    }

    /// Percent-decodes, refusing malformed escapes and invalid UTF-8.
    private static func percentDecoded(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(bytes: bytes, encoding: .utf8)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func encoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// A value quoted in an error, cut short and stripped of control characters.
    private static func printable(_ text: String) -> String {
        let clean = String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(40).map(Character.init))
        return clean.count < text.count ? clean + "…" : clean
    }
}

extension PostgresURL: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { self.redacted }
    public var debugDescription: String { "PostgresURL(\(self.redacted))" }
    /// Keeps the password out of `dump` and `String(reflecting:)` of values that contain a URL.
    public var customMirror: Mirror {
        Mirror(self, children: ["url": self.redacted], displayStyle: .struct)
    }
}

/// Why a PostgreSQL URL was refused. Messages never contain the user information.
public enum PostgresURLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which part of the URL is not validly percent-encoded.
    public enum Part: String, Sendable, Equatable {
        case user = "user name"
        case password
        case database = "database name"
    }

    case scheme
    case missingUser
    case missingHost
    case invalidHost
    case invalidPort
    case invalidDatabase
    case unencodedUserInfo
    case fragment
    case encoding(Part)
    case unknownParameter(String)
    case duplicateParameter(String)
    case emptyParameter(String)
    case sslMode(String)
    case rootCertWithoutVerification

    public var description: String {
        switch self {
        case .scheme:
            "PostgreSQL URL must start with postgres:// or postgresql://"
        case .missingUser:
            "PostgreSQL URL has no user name (postgres://USER:PASSWORD@HOST/DATABASE)"
        case .missingHost:
            "PostgreSQL URL has no host"
        case .invalidHost:
            "PostgreSQL URL has an invalid host (a name, an IPv4 address, or an IPv6 address in brackets)"
        case .invalidPort:
            "PostgreSQL URL has an invalid port (1-65535)"
        case .invalidDatabase:
            "PostgreSQL URL has an invalid database name"
        case .unencodedUserInfo:
            "PostgreSQL URL has an '@' after the host: percent-encode '/', '?' and '#' in the user name and password"
        case .fragment:
            "PostgreSQL URL must not have a '#' fragment (percent-encode '#' as %23)"
        case .encoding(let part):
            "PostgreSQL URL has an invalid percent-encoding in the \(part.rawValue)"
        case .unknownParameter(let name):
            "PostgreSQL URL has an unknown parameter '\(name)' (known: \(PostgresURL.knownParameters.joined(separator: ", ")))"
        case .duplicateParameter(let name):
            "PostgreSQL URL sets '\(name)' twice"
        case .emptyParameter(let name):
            "PostgreSQL URL has an empty or invalid value for '\(name)'"
        case .sslMode(let value):
            "PostgreSQL URL has an unknown sslmode '\(value)' (known: \(PostgresURL.SSLMode.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .rootCertWithoutVerification:
            "PostgreSQL URL sets sslrootcert without verifying: use sslmode=verify-ca or verify-full"
        }
    }
}
