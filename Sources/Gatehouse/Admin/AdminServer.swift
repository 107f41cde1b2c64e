import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: a small HTTP/1.1 server for operators (health, metrics, connections, reload, drain), on
/// TCP or on a Unix-domain socket.
struct AdminServer: Sendable {
    let channel: Channel
    let bind: AdminBind

    /// Why the endpoint could not be opened.
    struct BindError: Error, CustomStringConvertible {
        let description: String
    }

    /// Binds the endpoint. A Unix socket file replaces a stale socket at the same path (never another kind of
    /// file) and gets `socketMode`. Touches the file system: call it off the event loops.
    static func start(bind: AdminBind, socketMode: UInt16, api: AdminAPI, group: EventLoopGroup) async throws -> AdminServer {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(api: api))
                }
            }
        switch bind {
        case .tcp(let address):
            let channel = try await bootstrap.serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: address.host, port: address.port).get()
            return AdminServer(channel: channel, bind: bind)
        case .unix(let path):
            try Self.checkSocketPath(path)
            let channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            do {
                try Self.setMode(socketMode, of: path)
            } catch {
                try? await channel.close()
                Self.removeSocketFile(path)
                throw error
            }
            return AdminServer(channel: channel, bind: bind)
        }
    }

    /// The socket's directory must exist, and whatever is at the path already must be a socket.
    static func checkSocketPath(_ path: String) throws(BindError) {
        let directory = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw BindError(description: "the directory of the admin socket \(path) does not exist")
        }
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT != S_IFSOCK {
            throw BindError(description: "\(path) exists and is not a socket: refusing to replace it")
        }
    }

    /// Gives the socket file `mode` (also used when a reload changes only `socket_mode`).
    static func setMode(_ mode: UInt16, of path: String) throws(BindError) {
        guard chmod(path, mode_t(mode)) == 0 else {
            throw BindError(description: "cannot set the permissions of \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Removes a socket file (and nothing else) left at `path`.
    static func removeSocketFile(_ path: String) {
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
    }

    /// A description of where it listens, for logs.
    var address: String {
        switch self.bind {
        case .tcp: return self.channel.localAddress.map(ConnectionRecord.describe) ?? "?"
        case .unix(let path): return AdminBind.unixPrefix + path
        }
    }

    func stop() async {
        try? await self.channel.close()
        if case .unix(let path) = self.bind { Self.removeSocketFile(path) }
    }
}
