import Foundation
import NIOCore

/// What a relayed connection must enforce, fixed when it is admitted (a reload does not change live connections).
struct RelaySettings {
    /// Time allowed for a close handshake before TCP is closed.
    var closeTimeout: TimeAmount
    /// Ping the client after this much silence; nil disables.
    var keepaliveInterval: TimeAmount?
    /// Close both sides after this long without a data frame; nil disables.
    var idleTimeout: TimeAmount?
    /// Close with 1008 "token expired" at this time; nil when the token does not expire or expiry is not enforced.
    var expiresAt: NIODeadline?
    /// Rules of the client-to-backend direction.
    var clientRules: FrameScanner.Rules
    /// Rules of the backend-to-client direction.
    var backendRules: FrameScanner.Rules

    /// Settings for a route's limits and `compression`, given what the backend's 101 negotiated.
    init(
        limits: LimitsConfig, negotiatedExtensions: [Substring], expiresAt: NIODeadline?, compression: CompressionMode = .inspect
    ) {
        self.closeTimeout = TimeAmount(limits.closeTimeout)
        self.keepaliveInterval = limits.keepaliveInterval == .zero ? nil : TimeAmount(limits.keepaliveInterval)
        self.idleTimeout = limits.idleTimeout == .zero ? nil : TimeAmount(limits.idleTimeout)
        self.expiresAt = expiresAt
        let names = negotiatedExtensions.map { ($0.split(separator: ";").first ?? $0).trimmingSpaces().lowercased() }
        // permessage-deflate marks compressed messages with RSV1; an extension unknown to the proxy may use any bit.
        var allowed: UInt8 = names.contains("permessage-deflate") ? 0b100 : 0
        if names.contains(where: { $0 != "permessage-deflate" }) { allowed = 0b111 }
        let maxFrame = limits.maxFrameBytes.map(UInt64.init) ?? .max
        let maxMessage = limits.maxMessageBytes.map(UInt64.init) ?? .max
        // Compressed messages are inflated only when there is a message limit to enforce on them; `strip` inspects
        // too, in case a backend accepts the extension nobody offered it.
        let deflate = compression == .passthrough || limits.maxMessageBytes == nil
            ? nil : DeflateParameters(negotiated: negotiatedExtensions)
        self.clientRules = FrameScanner.Rules(
            requireMask: true, allowedRSV: allowed, maxFrameBytes: maxFrame, maxMessageBytes: maxMessage,
            messagesPerSecond: limits.messagesPerSecond, inflate: deflate?.client
        )
        self.backendRules = FrameScanner.Rules(
            requireMask: false, allowedRSV: allowed, maxFrameBytes: maxFrame, maxMessageBytes: maxMessage,
            messagesPerSecond: limits.messagesPerSecond, inflate: deflate?.server
        )
    }
}

extension NIODeadline {
    /// The monotonic deadline at which the wall clock reads `date`.
    static func fromWallClock(_ date: Date) -> NIODeadline {
        let seconds = date.timeIntervalSinceNow
        return .now() + .nanoseconds(Int64(max(-1e9, min(seconds, 1e9)) * 1e9))
    }
}
