import Foundation

/// A long-running Python peer (a server) whose output lines the test awaits while it runs.
struct PythonPeerServer {
    let child: ChildProcess

    var process: Process { self.child.process }

    /// Starts `python3 Peers/SCRIPT ARGUMENTS` and waits for its "listening PORT" line.
    static func start(_ script: String, _ arguments: [String]) async throws -> (PythonPeerServer, Int) {
        let child = try ChildProcess.start("/usr/bin/env", ["python3", ExternalProcess.peerScript(script)] + arguments, mergeStandardError: false)
        let server = PythonPeerServer(child: child)
        do {
            let line = try await server.waitForLine(containing: "listening ", timeout: .seconds(30))
            guard let port = line.split(separator: " ").last.flatMap({ Int($0) }) else { throw TestError("no port in '\(line)'") }
            return (server, port)
        } catch {
            server.stop()
            throw error
        }
    }

    func waitForLine(containing text: String, timeout: Duration = .seconds(10)) async throws -> String {
        try await self.child.output.waitForLine(containing: text, timeout: timeout, what: "a line containing '\(text)' from the python peer")
    }

    /// SIGKILL: the peer holds nothing worth a clean exit, and it must be gone when the test ends (SIGTERM left
    /// asyncio peers running for a while after the test).
    func stop() {
        self.child.stop()
    }

    /// Runs `body` with a started server and stops it afterwards, whatever happens.
    static func with<T>(_ script: String, _ arguments: [String], _ body: (PythonPeerServer, Int) async throws -> T) async throws -> T {
        let (server, port) = try await Self.start(script, arguments)
        defer { server.stop() }
        return try await body(server, port)
    }
}
