#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation

/// Speaks the sd_notify protocol when systemd set `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace):
/// one datagram per message, sent without waiting (`MSG_DONTWAIT`); a lost notification is logged by systemd, never
/// waited for. Without `NOTIFY_SOCKET` every call does nothing.
final class SystemdNotifier: Sendable {
    private let address: [UInt8]?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count < 108,
            path.hasPrefix("/") || path.hasPrefix("@")
        else {
            self.address = nil
            return
        }
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        self.address = bytes
    }

    var isActive: Bool { self.address != nil }

    func send(_ notification: SystemdNotification) {
        guard let address = self.address else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { path in
            for (index, byte) in address.enumerated() where index < path.count { path[index] = byte }
        }
        // The abstract namespace counts the name's exact length; a path may include its terminating zero.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count + (address.first == 0 ? 0 : 1))
        let message = Array(notification.text.utf8)
        _ = message.withUnsafeBytes { buffer in
            withUnsafePointer(to: &socketAddress) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), address, length)
                }
            }
        }
    }

    /// CLOCK_MONOTONIC in microseconds, for RELOADING=1.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
