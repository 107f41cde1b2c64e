import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Gatehouse

/// Graceful drain of a real `gatehouse run` process.
@Suite("Drain")
struct DrainTests {
    /// A loopback port free right now.
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    /// One plain listener on `port`, the builtin echo at `/echo`, and `admin` inside the admin mapping.
    static func config(port: Int, admin: String) -> String {
        """
        listeners:
          - name: plain
            bind: "127.0.0.1:\(port)"
        backends:
          - name: demo
            builtin: echo
        routes:
          - name: echo
            path: "/echo"
            backend: demo
            origins: ["*"]
        admin: { \(admin) }
        """
    }

    @Test func sigtermSends1001ToEveryClientAndExitsWithinTheDeadline() async throws {
        let port = try await Self.freePort()
        let yaml = Self.config(port: port, admin: "drain_timeout: 3s")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-drain-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        process.arguments = ["run", "--config", path]
        let log = Pipe()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // Wait until the listener accepts.
        var clients: [TestClient] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while clients.isEmpty && ContinuousClock.now < deadline {
            if let client = try? await TestClient.connect(port: port) { clients.append(client) } else { try await Task.sleep(for: .milliseconds(50)) }
        }
        clients.append(try await TestClient.connect(port: port))
        for client in clients {
            try await client.sendUpgrade(path: "/echo")
            #expect(try await client.readHead().status == 101)
        }
        let signalled = ContinuousClock.now
        kill(process.processIdentifier, SIGTERM)
        for client in clients {
            let close = try await client.readFrame(timeout: .seconds(5))
            #expect(close.closeCode == 1001)
            #expect(close.closeReason == "server shutting down")
        }
        // One client answers, the other does not: the process still exits by the deadline.
        try await clients[0].sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1001))
        let exited = try await withTimeout(10, "the process to exit") {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
                DispatchQueue.global().async {
                    process.waitUntilExit()
                    continuation.resume(returning: process.terminationStatus)
                }
            }
        }
        #expect(exited == 0)
        #expect(ContinuousClock.now - signalled < .seconds(5))
        // New connections are refused once draining started.
        #expect((try? await TestClient.connect(port: port)) == nil)
        for client in clients { await client.close() }
    }

    @Test func reloadCommandSignalsThroughThePidFile() async throws {
        let port = try await Self.freePort()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("proxy.yaml").path
        let yaml = Self.config(port: port, admin: "pid_file: gatehouse.pid")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        process.arguments = ["run", "--config", path]
        process.standardError = Pipe()
        process.standardOutput = Pipe()
        try process.run()
        defer { kill(process.processIdentifier, SIGKILL) }
        let pidPath = directory.appendingPathComponent("gatehouse.pid").path
        let deadline = ContinuousClock.now + .seconds(20)
        while !FileManager.default.fileExists(atPath: pidPath) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try String(contentsOfFile: pidPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "\(process.processIdentifier)")
        try yaml.replacingOccurrences(of: "admin:", with: "  - name: chat\n    path: \"/chat\"\n    backend: demo\n    origins: [\"*\"]\nadmin:")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await ExternalProcess.run([CLITests.binary, "reload", "--config", path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("sent SIGHUP to \(process.processIdentifier)"))
        // The reload is asynchronous to the signal: the new route starts answering 101 shortly.
        var status = 0
        while status != 101 && ContinuousClock.now < deadline {
            let client = try await TestClient.connect(port: port)
            try await client.sendUpgrade(path: "/chat")
            status = try await client.readHead().status
            await client.close()
            if status != 101 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(status == 101)
        kill(process.processIdentifier, SIGTERM)
    }

    @Test func drainingRefusesNewHandshakesWith503() async throws {
        try await TestProxy.with(TestConfig.echo()) { proxy in
            let port = try proxy.port("plain")
            let early = try await TestClient.connect(port: port)
            // The listener accepts in order: once a later connection is answered, the early one has been taken
            // off the accept queue (closing the listener would otherwise reset it).
            let later = try await TestClient.connect(port: port)
            try await later.sendUpgrade(path: "/echo")
            #expect(try await later.readHead().status == 101)
            await later.close()
            await proxy.server.drain(timeout: .milliseconds(200))
            // A connection accepted before the drain, whose head arrives after it, is answered 503.
            try await early.sendUpgrade(path: "/echo")
            let (head, body) = try await early.readResponse()
            #expect(head.status == 503)
            #expect(body == "server shutting down\n")
            #expect(head.header("retry-after") == "5")
        }
    }
}
