import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Resolves a backend server's host name to IP addresses, off the event loops (a seam: tests pass their own).
protocol BackendResolver: Sendable {
    /// The IP literals `host` resolves to now (each returned as `BindAddress(host: ip, port: port)`), in a stable
    /// order; throws when the name does not resolve.
    func resolve(host: String, port: Int) async throws -> [BindAddress]
}

/// `getaddrinfo` on NIO's blocking-I/O thread pool: never on an event loop, never on the cooperative pool.
struct SystemBackendResolver: BackendResolver {
    struct Failure: Error, CustomStringConvertible {
        let host: String
        let code: Int32
        var description: String { "cannot resolve \(self.host): \(String(cString: gai_strerror(self.code)))" }
    }

    func resolve(host: String, port: Int) async throws -> [BindAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            try Self.lookup(host: host, port: port)
        }
    }

    private static func lookup(host: String, port: Int) throws -> [BindAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = SOCK_STREAM
        #else
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, String(port), &hints, &result)
        guard code == 0 else { throw Failure(host: host, code: code) }
        defer { freeaddrinfo(result) }
        var addresses: [BindAddress] = []
        var seen = Set<String>()
        var next = result
        while let info = next, addresses.count < BackendServerSet.maxAddressesPerName {
            next = info.pointee.ai_next
            guard let raw = info.pointee.ai_addr else { continue }
            let address: SocketAddress?
            switch Int32(raw.pointee.sa_family) {
            case AF_INET:
                address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: host) }
            case AF_INET6:
                address = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: host) }
            default:
                address = nil
            }
            guard let ip = address?.ipAddress, seen.insert(ip).inserted else { continue }
            addresses.append(BindAddress(host: ip, port: port))
        }
        // getaddrinfo's order varies with the resolver (round-robin DNS): a sorted list changes only when the set does.
        return addresses.sorted { $0.host < $1.host }
    }
}
