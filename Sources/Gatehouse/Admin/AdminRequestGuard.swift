import NIOHTTP1

/// Keeps web pages away from the admin API.
///
/// A page the operator has open can send "simple" cross-site requests (a form POST, text/plain) to a loopback
/// address, and a DNS-rebound name makes the browser treat the admin endpoint as the page's own origin. Neither
/// can be told apart by the address, so the request itself decides:
/// - any `Origin` header, or a `Sec-Fetch-Site` other than `none` (the operator typing the URL), is a page's
///   request: the admin API serves no pages, so none is legitimate;
/// - on TCP, `Host` must name the endpoint: a loopback name, the bind's host, or (for a wildcard bind) an IP
///   literal, none of which a rebinding attacker's name can be;
/// - a state-changing request (anything but GET and HEAD) needs the admin token or `Gatehouse-Admin: 1`, headers
///   a browser cannot send cross-site without a CORS preflight, which the admin API never grants.
struct AdminRequestGuard: Sendable {
    /// Host names (lowercase, no port) accepted; nil for a Unix socket, which browsers cannot reach.
    let allowedHosts: Set<String>?
    /// Whether any IP literal is accepted as `Host` (a wildcard bind, reached by whatever address the machine has).
    let acceptsIPLiterals: Bool

    static let confirmationHeader = "Gatehouse-Admin"
    static let loopbackNames: Set<String> = ["localhost", "127.0.0.1", "::1"]

    init(bind: AdminBind) {
        switch bind {
        case .unix:
            self.allowedHosts = nil
            self.acceptsIPLiterals = false
        case .tcp(let address):
            let host = Self.normalize(address.host)
            let wildcard = host == "0.0.0.0" || host == "::"
            self.allowedHosts = wildcard ? Self.loopbackNames : Self.loopbackNames.union([host])
            self.acceptsIPLiterals = wildcard
        }
    }

    /// Why the request must be refused with 403 before it is even authenticated; nil lets it through.
    func refusalBeforeAuthentication(_ headers: HTTPHeaders) -> String? {
        if headers.contains(name: "origin") {
            return "the admin API does not answer requests made by web pages (Origin present)"
        }
        for site in headers["sec-fetch-site"] where site.trimmingASCIISpaces.lowercased() != "none" {
            return "the admin API does not answer requests made by web pages (Sec-Fetch-Site: \(site.prefix(32)))"
        }
        guard let allowed = self.allowedHosts else { return nil }
        let hosts = headers["host"]
        guard hosts.count == 1, let host = Self.hostName(of: hosts[0]) else {
            return "the admin API needs exactly one valid Host header"
        }
        if allowed.contains(host) || self.acceptsIPLiterals && Self.isIPLiteral(host) { return nil }
        return "Host '\(host.prefix(64))' is not this admin endpoint (use its address or localhost)"
    }

    /// Why a state-changing request must be refused with 403; `tokenVerified` is whether it carried the
    /// configured admin token.
    func refusalOfStateChange(method: HTTPMethod, headers: HTTPHeaders, tokenVerified: Bool) -> String? {
        if method == .GET || method == .HEAD || tokenVerified { return nil }
        let confirmed = headers[Self.confirmationHeader]
        if confirmed.count == 1, confirmed[0].trimmingASCIISpaces == "1" { return nil }
        return "\(method) needs the header '\(Self.confirmationHeader): 1' (or the admin token)"
    }

    /// The host part of a `Host` value, lowercase and without a trailing dot; nil when malformed.
    static func hostName(of value: String) -> String? {
        let text = value.trimmingASCIISpaces
        var host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                port = ""
            } else {
                guard rest.hasPrefix(":") else { return nil }
                port = rest.dropFirst()
            }
        } else if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            host = Substring(text)
            port = ""
        }
        guard port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        if host.hasSuffix(".") { host = host.dropLast() }
        guard !host.isEmpty, host.count <= 255,
            host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-.:_".contains($0)) })
        else { return nil }
        return Self.normalize(String(host))
    }

    private static func normalize(_ host: String) -> String {
        let lower = host.lowercased()
        return lower == "0:0:0:0:0:0:0:1" ? "::1" : lower
    }

    /// A dotted IPv4 address or an IPv6 literal (which `hostName` only takes from brackets).
    static func isIPLiteral(_ host: String) -> Bool {
        if host.contains(":") { return host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            (1...3).contains(part.count) && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
    }
}

extension String {
    fileprivate var trimmingASCIISpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
