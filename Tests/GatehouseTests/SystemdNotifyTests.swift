import Foundation
import Testing

@testable import Gatehouse

/// The sd_notify protocol, with a Unix datagram socket in the test standing in for systemd, and the shipped unit.
@Suite("systemd")
struct SystemdNotifyTests {
    /// Stands in for systemd: binds a Unix datagram socket and prints each datagram it receives on one line.
    static let receiver = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(sys.argv[1])
        print("bound", flush=True)
        s.settimeout(120)
        while True:
            print(s.recv(4096).decode().replace("\\n", " | "), flush=True)
        """

    @Test func messagesFollowTheLifecycle() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-notify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socketPath = directory.appendingPathComponent("notify").path
        let systemd = try ChildProcess.start("/usr/bin/env", ["python3", "-c", Self.receiver, socketPath])
        defer { systemd.stop() }
        _ = try await systemd.waitForLine(containing: "bound")
        let collector = systemd.output

        let config = directory.appendingPathComponent("proxy.yaml").path
        try """
            listeners: [{name: plain, bind: "127.0.0.1:0"}]
            backends: [{name: demo, builtin: echo}]
            routes: [{name: echo, path: "/echo", backend: demo, origins: ["*"]}]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let child = try ChildProcess.start(
            CLITests.binary, ["run", "--config", config], environment: ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "400000"]
        )
        defer { child.stop() }
        let ready = try await collector.waitForLine(containing: "READY=1", timeout: .seconds(30), what: "READY=1")
        #expect(ready.contains("STATUS=serving"))
        // READY is sent once the listener is bound: its port accepts a connection.
        let line = try await child.waitForLine(containing: "listener=plain")
        let port = try #require(line.range(of: #"address=127\.0\.0\.1:(\d+)"#, options: .regularExpression).flatMap {
            Int(line[$0].split(separator: ":").last ?? "")
        })
        let probe = try await TestClient.connect(port: port)
        await probe.close()
        _ = try await collector.waitForLine(containing: "WATCHDOG=1", timeout: .seconds(5), what: "a watchdog keep-alive")

        child.signal(SIGHUP)
        let reloading = try await collector.waitForLine(containing: "RELOADING=1", timeout: .seconds(10), what: "RELOADING=1")
        let micros = reloading.components(separatedBy: "MONOTONIC_USEC=").last.flatMap { UInt64($0.prefix { $0.isNumber }) }
        #expect((micros ?? 0) > 0, "\(reloading)")
        try await eventually("READY=1 after the reload") {
            let all = collector.all
            guard let reload = all.lastIndex(where: { $0.contains("RELOADING=1") }) else { return false }
            return all[(reload + 1)...].contains { $0.contains("READY=1") }
        }

        child.signal(SIGTERM)
        _ = try await collector.waitForLine(containing: "STOPPING=1", timeout: .seconds(10), what: "STOPPING=1")
        #expect(try await child.waitForExit(seconds: 20) == 0)
    }

    @Test func nothingIsSentWithoutNotifySocketAndTheWatchdogFollowsItsPid() {
        #expect(!SystemdNotifier(environment: [:]).isActive)
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]).isActive)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "@abstract"]).isActive)
        #expect(SystemdNotification.watchdogInterval(environment: ["WATCHDOG_USEC": "2000000"], pid: 42) == .seconds(1))
        #expect(SystemdNotification.watchdogInterval(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"], pid: 42) == nil)
        #expect(SystemdNotification.watchdogInterval(environment: [:], pid: 42) == nil)
        #expect(SystemdNotification.status("a\nb").text == "STATUS=a b")
    }

    /// The shipped unit passes `systemd-analyze verify` (with ExecStart pointed at the built binary).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func theUnitVerifies() async throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/systemd/gatehouse.service")
        let unit = try String(contentsOf: source, encoding: .utf8).replacingOccurrences(of: "/usr/local/bin/gatehouse", with: CLITests.binary)
        for required in ["Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "LimitNOFILE=", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "DynamicUser=yes"] {
            #expect(unit.contains(required), "\(required)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("gatehouse.service").path
        try unit.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await ExternalProcess.run(["/usr/bin/systemd-analyze", "verify", "--man=no", path], timeout: 60)
        let problems = result.output.split(separator: "\n").filter { $0.contains("gatehouse.service") }
        #expect(result.status == 0 && problems.isEmpty, "\(result.output)")
    }
}
