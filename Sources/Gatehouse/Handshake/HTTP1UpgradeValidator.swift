import Foundation
import NIOHTTP1

/// The checks RFC 6455 §4.2.1 and RFC 9112 impose on an HTTP/1.1 upgrade request, split in two so the route
/// lookup (404) sits between framing errors and upgrade errors.
enum HTTP1UpgradeValidator {
    /// Framing checks that do not depend on the route: version, body, Host, target form.
    static func validateFraming(_ head: HTTPRequestHead) -> HandshakeRefusal? {
        guard head.version == .http1_1 else {
            return .badRequest("HTTP/1.1 is required for a WebSocket upgrade")
        }
        if head.headers.contains(name: "transfer-encoding") {
            return .badRequest("a WebSocket upgrade request must not use Transfer-Encoding")
        }
        let lengths = head.headers["content-length"]
        if !lengths.isEmpty && (lengths.count > 1 || lengths[0].trimmingSpaces() != "0") {
            return .badRequest("a WebSocket upgrade request must not carry a body")
        }
        let hosts = head.headers["host"]
        guard hosts.count == 1, HostPattern.normalizedHost(fromAuthority: hosts[0]) != nil else {
            return .badRequest(hosts.isEmpty ? "missing Host header" : "exactly one valid Host header is required")
        }
        return TargetValidator.validate(head.uri)
    }

    /// Upgrade checks, after a route matched.
    static func validateUpgrade(_ head: HTTPRequestHead) -> HandshakeRefusal? {
        let upgrade = head.headers["upgrade"].flatMap { HTTPToken.list($0) }
        guard upgrade.contains(where: { $0.lowercased() == "websocket" }) else {
            return .upgradeRequired("this endpoint only accepts WebSocket upgrades (Upgrade: websocket)")
        }
        let connection = head.headers["connection"].flatMap { HTTPToken.list($0) }
        guard connection.contains(where: { $0.lowercased() == "upgrade" }) else {
            return .upgradeRequired("a WebSocket upgrade needs Connection: Upgrade")
        }
        guard head.method == .GET else {
            return .badRequest("a WebSocket upgrade must use GET")
        }
        let versions = head.headers["sec-websocket-version"]
        guard versions.count == 1, versions[0].trimmingSpaces() == "13" else {
            return .upgradeRequired("Sec-WebSocket-Version 13 is required")
        }
        let keys = head.headers["sec-websocket-key"]
        guard keys.count == 1, Self.isValidKey(keys[0]) else {
            return .badRequest(keys.isEmpty ? "missing Sec-WebSocket-Key" : "Sec-WebSocket-Key must be 16 bytes in base64")
        }
        return nil
    }

    /// A key is the base64 of 16 bytes: 24 characters ending in `==`.
    static func isValidKey(_ key: String) -> Bool {
        let trimmed = key.trimmingSpaces()
        guard trimmed.utf8.count == 24, let data = Data(base64Encoded: String(trimmed)) else { return false }
        return data.count == 16
    }
}

/// Checks on the request target shared by both HTTP versions.
enum TargetValidator {
    /// Refuses targets that are not origin-form or that hold dot segments or encoded slashes, which a backend could
    /// resolve to a path the route did not allow. One pass over the bytes.
    static func validate(_ target: String) -> HandshakeRefusal? {
        let bytes = target.utf8
        guard bytes.first == UInt8(ascii: "/"), bytes.count <= 8192 else {
            return .badRequest("the request target must be a path starting with '/'")
        }
        var inPath = true
        var segmentDots = 0  // dots in the current segment so far (literal or %2e)
        var segmentOther = false  // the segment holds something else than dots
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            guard byte > 0x20 && byte < 0x7F else {
                return .badRequest("the request target has characters that must be percent-encoded")
            }
            if inPath {
                switch byte {
                case UInt8(ascii: "/"), UInt8(ascii: "?"):
                    if !segmentOther && (segmentDots == 1 || segmentDots == 2) {
                        return .badRequest("the request path must not contain '.' or '..' segments")
                    }
                    segmentDots = 0
                    segmentOther = false
                    if byte == UInt8(ascii: "?") { inPath = false }
                case UInt8(ascii: "."):
                    segmentDots += 1
                case UInt8(ascii: "\\"):
                    return .badRequest("the request path must not contain encoded slashes or backslashes")
                case UInt8(ascii: "%"):
                    let first = bytes.index(after: index)
                    let second = first == bytes.endIndex ? first : bytes.index(after: first)
                    if first != bytes.endIndex, second != bytes.endIndex {
                        let high = bytes[first] | 0x20  // lowercase hex letters
                        let low = bytes[second] | 0x20
                        if high == UInt8(ascii: "2") && low == UInt8(ascii: "e") {
                            segmentDots += 1
                            index = second
                        } else if (high == UInt8(ascii: "2") && low == UInt8(ascii: "f")) || (high == UInt8(ascii: "5") && low == UInt8(ascii: "c")) {
                            return .badRequest("the request path must not contain encoded slashes or backslashes")
                        } else {
                            segmentOther = true
                        }
                    } else {
                        segmentOther = true
                    }
                default:
                    segmentOther = true
                }
            }
            index = bytes.index(after: index)
        }
        if inPath && !segmentOther && (segmentDots == 1 || segmentDots == 2) {
            return .badRequest("the request path must not contain '.' or '..' segments")
        }
        return nil
    }
}
