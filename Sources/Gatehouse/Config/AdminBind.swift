/// Where the admin endpoint listens: a TCP address, or a Unix-domain socket (`unix:/path`, HAProxy's spelling).
///
/// Kept apart from ``BindAddress`` so that only the admin endpoint can be a Unix socket: listeners and backends
/// stay TCP.
public enum AdminBind: Sendable, Hashable, CustomStringConvertible {
    case tcp(BindAddress)
    /// Absolute path of the socket file.
    case unix(String)

    static let unixPrefix = "unix:"

    public var description: String {
        switch self {
        case .tcp(let address): return address.description
        case .unix(let path): return Self.unixPrefix + path
        }
    }

    /// Whether only this machine can reach it (a loopback address or a socket file).
    public var isLocal: Bool {
        switch self {
        case .tcp(let address): return address.isLoopback
        case .unix: return true
        }
    }

    /// The TCP address, if it is one.
    public var tcpAddress: BindAddress? {
        if case .tcp(let address) = self { return address }
        return nil
    }
}

extension ConfigNode {
    func adminBind(paths: ConfigPaths) throws(ConfigError) -> AdminBind {
        let text = try self.string("admin bind")
        if text.hasPrefix(AdminBind.unixPrefix) {
            let path = String(text.dropFirst(AdminBind.unixPrefix.count))
            guard !path.isEmpty, !path.hasSuffix("/") else {
                throw self.error("admin bind unix: needs the path of the socket file, found '\(text)'")
            }
            // sockaddr_un holds 108 bytes including the terminating NUL.
            let resolved = paths.resolve(path)
            guard resolved.utf8.count < 108 else {
                throw self.error("admin bind: the socket path is longer than 107 bytes (\(resolved))")
            }
            return .unix(resolved)
        }
        guard let address = BindAddress(parsing: text) else {
            throw self.error("admin bind must be HOST:PORT (IPv6 as [::1]:PORT) or unix:/path/to/socket, found '\(text)'")
        }
        return .tcp(address)
    }
}
