import Foundation
import NIOHTTP1

/// The checks RFC 6455 §4.2.1 and RFC 9112 impose on an HTTP/1.1 upgrade request, split in two so the route
/// lookup (404) sits between framing errors and upgrade errors.
enum HTTP1UpgradeValidator {
    /// Framing checks that do not depend on the route: version, body, Host. The target is normalised apart
    /// (``RequestTarget``).
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
        return nil
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
