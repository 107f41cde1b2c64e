import NIOHTTP1

/// Builds the HTTP/1.1 upgrade request sent to a backend from what the client asked.
///
/// Hop-by-hop headers are removed (RFC 9110 §7.6.1), the `Sec-WebSocket-*` headers are kept, and the
/// `X-Forwarded-*` and identity headers are set by the proxy alone: the edge trusts no client copy of them.
///
/// CGI, WSGI, PHP and Rack backends read `X_Auth_Subject` and `X-Auth-Subject` as the same variable, so header
/// names are compared folded (case, and `_` as `-`): a client copy of a header the proxy sets or strips never
/// passes under another spelling, and names with `_` are dropped altogether unless the route allows them.
enum ForwardedRequest {
    /// Headers that describe one hop or that the proxy sets itself, folded (lower case, `-`).
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate", "content-length", "host",
    ]

    /// Headers only the proxy may set; a client's copies are dropped whatever their spelling. `Gatehouse-Channels` is
    /// the backend's word to the proxy: a client's copy must not reach the backend (it could echo it back).
    static let proxyOwned: [String] = [
        "forwarded", "x-real-ip", "x-auth-subject", "x-auth-scopes", "x-auth-provider", "gatehouse-channels",
        "x-client-cert",
    ]

    /// Prefixes of header families only the proxy may set. `X-Client-Cert-*` carries the verified client
    /// certificate (`forward_certificate`); it is stripped on every route, whether or not the proxy sets it there.
    static let proxyOwnedPrefixes: [String] = ["x-forwarded-", "x-client-cert-"]

    /// What the proxy changes in the request, decided by policy.
    struct Edits {
        /// Target to send (the client's, minus any query token).
        var target: String
        /// `Sec-WebSocket-Protocol` entries to send (the client's, minus any token entry); nil keeps the client's.
        var subprotocols: [Substring]?
        /// Remove `Authorization` (a token the proxy consumed and the route does not forward).
        var dropAuthorization: Bool
        /// Remove these cookies, every one the route may read a token from (names compared exactly).
        var dropCookies: Set<String>
        /// Identity headers to add.
        var identity: [(String, String)]
        /// Key to send when the client's transport has none (HTTP/2).
        var key: String?
        /// Forward client headers whose names hold `_` (those that fold to a header the proxy sets or strips are
        /// dropped even then).
        var allowUnderscoreHeaders: Bool = false
        /// Extensions (names in lower case) removed from the client's `Sec-WebSocket-Extensions` offer, so the backend
        /// cannot accept them (`compression: strip` removes `permessage-deflate`).
        var dropExtensions: Set<String> = []
    }

    /// What happens to one client header on its way to the backend.
    enum HeaderAction: Equatable {
        case forward
        case drop
        /// A `Cookie` header: forwarded minus the token cookies.
        case filterCookies
        /// A `Sec-WebSocket-Extensions` header: forwarded minus the dropped extensions.
        case filterExtensions
    }

    /// The request head for the backend.
    static func make(from request: UpgradeRequest, edits: Edits) -> HTTPRequestHead {
        let connectionNamed = Self.connectionNamed(request.headers)
        var headers = HTTPHeaders()
        headers.reserveCapacity(request.headers.count + 6)
        if let authority = request.authority { headers.add(name: "Host", value: authority) }
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        var cookies: [Substring] = []
        var cookieHeaderName: String?
        var extensions: [Substring] = []
        var extensionsHeaderName: String?
        for (name, value) in request.headers {
            switch Self.action(forHeader: name, edits: edits, connectionNamed: connectionNamed) {
            case .forward:
                headers.add(name: name, value: value)
            case .drop:
                continue
            case .filterCookies:
                // Several Cookie fields become one (RFC 9113 §8.2.3; HTTP/1.1 backends read one).
                cookieHeaderName = cookieHeaderName ?? name
                cookies += Self.cookies(in: value, removing: edits.dropCookies)
            case .filterExtensions:
                extensionsHeaderName = extensionsHeaderName ?? name
                extensions += Self.extensions(in: value, removing: edits.dropExtensions)
            }
        }
        if let extensionsHeaderName, !extensions.isEmpty {
            headers.add(name: extensionsHeaderName, value: extensions.joined(separator: ", "))
        }
        if let cookieHeaderName, !cookies.isEmpty {
            headers.add(name: cookieHeaderName, value: cookies.joined(separator: "; "))
        }
        if let subprotocols = edits.subprotocols, !subprotocols.isEmpty {
            headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", "))
        }
        if let key = edits.key {
            headers.add(name: "Sec-WebSocket-Key", value: key)
            headers.add(name: "Sec-WebSocket-Version", value: "13")
        }
        headers.add(name: "X-Forwarded-For", value: request.clientIP)
        headers.add(name: "X-Forwarded-Proto", value: request.scheme)
        if let authority = request.authority { headers.add(name: "X-Forwarded-Host", value: authority) }
        for (name, value) in edits.identity { headers.add(name: name, value: value) }
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: edits.target, headers: headers)
    }

    /// The decision for one client header. Pure, and allocation-free for the common case: it runs per header per
    /// handshake. `connectionNamed` holds the folded names the client's `Connection` lists.
    static func action(forHeader name: String, edits: Edits, connectionNamed: Set<String>) -> HeaderAction {
        var name = name
        return name.withUTF8 { bytes in
            let hasUnderscore = bytes.contains(UInt8(ascii: "_"))
            if Self.hopByHop.contains(where: { Self.folded(bytes, equals: $0) })
                || Self.proxyOwned.contains(where: { Self.folded(bytes, equals: $0) })
                || Self.proxyOwnedPrefixes.contains(where: { Self.folded(bytes, hasPrefix: $0) })
                // Allocates only when the client's Connection names extra headers, which is rare.
                || (!connectionNamed.isEmpty && connectionNamed.contains(Self.foldedName(bytes)))
            {
                return .drop
            }
            if hasUnderscore {
                // `Sec_WebSocket_Protocol: bearer.T` would carry a token past its removal, `Sec_WebSocket_Key` would
                // stand beside the key the proxy sends: aliases of the handshake headers never pass.
                return edits.allowUnderscoreHeaders && !Self.folded(bytes, hasPrefix: "sec-websocket-") ? .forward : .drop
            }
            if edits.dropAuthorization && Self.folded(bytes, equals: "authorization") { return .drop }
            if edits.subprotocols != nil && Self.folded(bytes, equals: "sec-websocket-protocol") { return .drop }
            if edits.key != nil
                && (Self.folded(bytes, equals: "sec-websocket-key") || Self.folded(bytes, equals: "sec-websocket-version"))
            {
                return .drop
            }
            if !edits.dropCookies.isEmpty && Self.folded(bytes, equals: "cookie") { return .filterCookies }
            if !edits.dropExtensions.isEmpty && Self.folded(bytes, equals: "sec-websocket-extensions") { return .filterExtensions }
            return .forward
        }
    }

    /// The folded names listed in the client's `Connection` headers (other than `Sec-WebSocket-*`, which the
    /// proxy keeps). Usually empty: `Connection: Upgrade` names only a hop-by-hop header.
    static func connectionNamed(_ headers: HTTPHeaders) -> Set<String> {
        var names: Set<String> = []
        for value in headers["connection"] {
            for element in HTTPToken.list(value) {
                let folded = String(decoding: element.utf8.lazy.map(Self.fold), as: UTF8.self)
                if folded != "upgrade" && !folded.hasPrefix("sec-websocket-") { names.insert(folded) }
            }
        }
        return names
    }

    /// `byte` compared as a header name character: ASCII case folded, `_` as `-`.
    @inline(__always)
    static func fold(_ byte: UInt8) -> UInt8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte | 0x20
        case UInt8(ascii: "_"): return UInt8(ascii: "-")
        default: return byte
        }
    }

    /// `bytes` folded, as a string.
    static func foldedName(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: bytes.lazy.map(Self.fold), as: UTF8.self)
    }

    /// Whether `bytes` folded equals `name` (already folded).
    static func folded(_ bytes: UnsafeBufferPointer<UInt8>, equals name: String) -> Bool {
        bytes.count == name.utf8.count && Self.folded(bytes, hasPrefix: name)
    }

    /// Whether `bytes` folded starts with `prefix` (already folded).
    static func folded(_ bytes: UnsafeBufferPointer<UInt8>, hasPrefix prefix: String) -> Bool {
        guard bytes.count >= prefix.utf8.count else { return false }
        var index = 0
        for expected in prefix.utf8 {
            if Self.fold(bytes[index]) != expected { return false }
            index += 1
        }
        return true
    }

    /// The offers of a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1: `name; param=value, …`), minus those whose
    /// extension is named in `names` (lower case). Parameter values are tokens, so offers never hold a comma.
    static func extensions(in value: String, removing names: Set<String>) -> [Substring] {
        HTTPToken.list(value).filter { offer in
            !names.contains((offer.split(separator: ";", maxSplits: 1).first ?? offer).trimmingSpaces().lowercased())
        }
    }

    /// The cookie pairs of a `Cookie` value, minus those named in `names` (compared exactly).
    static func cookies(in value: String, removing names: Set<String>) -> [Substring] {
        value.split(separator: ";").compactMap { pair in
            let trimmed = pair.trimmingSpaces()
            guard !trimmed.isEmpty else { return nil }
            guard let (cookieName, _) = TokenExtractor.cookiePair(trimmed) else { return trimmed }
            return names.contains(String(cookieName)) ? nil : trimmed
        }
    }
}
