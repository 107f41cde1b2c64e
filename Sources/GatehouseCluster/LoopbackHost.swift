/// Whether a host names this machine's loopback: `localhost`, an address in 127.0.0.0/8, or `::1` (with or without
/// brackets, any case). Plain-text `http://` and `sslmode=prefer` are allowed only toward such hosts.
public enum LoopbackHost {
    public static func contains(_ host: String) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
