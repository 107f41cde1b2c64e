import Foundation
import NIOConcurrencyHelpers

/// A long-running Python peer (a server) whose output lines the test reads while it runs.
struct PythonPeerServer {
    let process: Process
    private let lines: NIOLockedValueBox<[String]>

    /// Starts `python3 Peers/SCRIPT ARGUMENTS` and waits for its "listening PORT" line.
    static func start(_ script: String, _ arguments: [String]) async throws -> (PythonPeerServer, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", ExternalProcess.peerScript(script)] + arguments
        let output = Pipe()
        process.standardOutput = output
        let lines = NIOLockedValueBox<[String]>([])
        try process.run()
        let handle = output.fileHandleForReading
        // Blocking reads on a GCD thread, never on the concurrency pool.
        DispatchQueue.global().async {
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<newline])
                    pending = String(pending[pending.index(after: newline)...])
                    lines.withLockedValue { $0.append(line) }
                }
            }
        }
        let server = PythonPeerServer(process: process, lines: lines)
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
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = self.lines.withLockedValue({ $0.first { $0.contains(text) } }) { return line }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestError.timeout("a line containing '\(text)' from the python peer")
    }

    func stop() {
        if self.process.isRunning { self.process.terminate() }
    }

    /// Runs `body` with a started server and stops it afterwards, whatever happens.
    static func with<T>(_ script: String, _ arguments: [String], _ body: (PythonPeerServer, Int) async throws -> T) async throws -> T {
        let (server, port) = try await Self.start(script, arguments)
        defer { server.stop() }
        return try await body(server, port)
    }
}
