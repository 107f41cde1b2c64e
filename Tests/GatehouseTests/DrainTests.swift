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

    /// Starts `gatehouse run --config PATH` and waits for its listener's "listening" log record, which carries the
    /// port (the configuration binds port 0, so no other test can take the port in between).
    static func startProxy(config path: String) async throws -> (ChildProcess, Int) {
        let process = try ChildProcess.start(CLITests.binary, ["run", "--config", path])
        do {
            let line = try await process.waitForLine(containing: "listener=plain")
            let address = line.split(separator: " ").first { $0.hasPrefix("address=") }
            guard let port = address?.split(separator: ":").last.flatMap({ Int($0) }) else { throw TestError("no port in '\(line)'") }
            return (process, port)
        } catch {
            process.stop()
            throw error
        }
    }

    @Test func sigtermSends1001ToEveryClientAndExitsWithinTheDeadline() async throws {
        let yaml = Self.config(port: 0, admin: "drain_timeout: 3s")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-drain-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let (process, port) = try await Self.startProxy(config: path)
        defer { process.stop() }

        let clients = [try await TestClient.connect(port: port), try await TestClient.connect(port: port)]
        for client in clients {
            try await client.sendUpgrade(path: "/echo")
            #expect(try await client.readHead().status == 101)
        }
        let signalled = ContinuousClock.now
        process.signal(SIGTERM)
        for client in clients {
            let close = try await client.readFrame(timeout: .seconds(10))
            #expect(close.closeCode == 1001)
            #expect(close.closeReason == "server shutting down")
        }
        // One client answers, the other does not: the process still exits by the deadline (3 s).
        try await clients[0].sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1001))
        let exited = try await process.waitForExit(seconds: 20)
        #expect(exited == 0)
        // The drain deadline bounds the exit; the margin above it is for a loaded machine.
        #expect(ContinuousClock.now - signalled < .seconds(8))
        // New connections are refused once draining started.
        #expect((try? await TestClient.connect(port: port)) == nil)
        for client in clients { await client.close() }
    }

    @Test func reloadCommandSignalsThroughThePidFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("proxy.yaml").path
        let yaml = Self.config(port: 0, admin: "pid_file: gatehouse.pid")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let (process, port) = try await Self.startProxy(config: path)
        defer { process.stop() }
        // The pid file is written just after the listeners start, and nothing announces it: a bounded `eventually`.
        let pidPath = directory.appendingPathComponent("gatehouse.pid").path
        try await eventually("the pid file") { FileManager.default.fileExists(atPath: pidPath) }
        #expect(try String(contentsOfFile: pidPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "\(process.pid)")
        // The same bind text keeps the running listener (and its port) across the reload.
        try yaml.replacingOccurrences(of: "admin:", with: "  - name: chat\n    path: \"/chat\"\n    backend: demo\n    origins: [\"*\"]\nadmin:")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await ExternalProcess.run([CLITests.binary, "reload", "--config", path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("sent SIGHUP to \(process.pid)"))
        // The reload is asynchronous to the signal: its log record says when the new route is in place.
        _ = try await process.waitForLine(containing: "configuration reloaded")
        let client = try await TestClient.connect(port: port)
        try await client.sendUpgrade(path: "/chat")
        #expect(try await client.readHead().status == 101)
        await client.close()
        process.signal(SIGTERM)
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
