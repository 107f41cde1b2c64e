import Foundation
import Testing

/// The `gatehouse` executable as an operator runs it.
@Suite("Command line")
struct CLITests {
    /// The executable built next to the test bundle.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gatehouse").path
    }

    /// Starts `gatehouse echo` on an ephemeral port and waits for the line announcing it (the port comes from that
    /// line, so no other test can take it in between). `stdbuf -oL`: the line is printed through a buffered stdout.
    static func startEcho(_ arguments: [String]) async throws -> (ChildProcess, Int) {
        let process = try ChildProcess.start("/usr/bin/env", ["stdbuf", "-oL", Self.binary, "echo", "--bind", "127.0.0.1:0"] + arguments)
        do {
            let line = try await process.waitForLine(containing: "echo server listening on ")
            guard let port = line.split(separator: ":").last.flatMap({ Int($0) }) else { throw TestError("no port in '\(line)'") }
            return (process, port)
        } catch {
            process.stop()
            throw error
        }
    }

    func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-cli-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func checkAcceptsAValidFile() async throws {
        let path = try self.write(TestConfig.echo())
        let result = try await ExternalProcess.run([Self.binary, "check", path], timeout: 30)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"))
    }

    @Test func checkRefusesABadFileWithItsPosition() async throws {
        let path = try self.write(TestConfig.echo().replacingOccurrences(of: "backend: demo", with: "backend: nothere"))
        let result = try await ExternalProcess.run([Self.binary, "check", path], timeout: 30)
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):11:14: route 'echo' names backend 'nothere', which does not exist"), "\(result.output)")
    }

    @Test func runRefusesABadFile() async throws {
        let path = try self.write("listeners: []\n")
        let result = try await ExternalProcess.run([Self.binary, "run", "--config", path], timeout: 30)
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):1:12: listeners must list at least one listener"), "\(result.output)")
    }

    @Test func versionPrints() async throws {
        let result = try await ExternalProcess.run([Self.binary, "version"], timeout: 30)
        #expect(result.status == 0)
        #expect(result.output.hasPrefix("gatehouse "))
    }
}

extension CLITests {
    @Test func echoCommandServesWebSockets() async throws {
        let (process, port) = try await Self.startEcho(["--threads", "1"])
        defer { process.stop() }
        let echo = try await TestClient.connect(port: port)
        try await echo.sendUpgrade(path: "/")
        #expect(try await echo.readHead().status == 101)
        try await echo.sendFrame(opcode: TestFrame.text, payload: Array("part one, ".utf8), fin: false)
        try await echo.sendFrame(opcode: TestFrame.continuation, payload: Array("part two".utf8))
        let message = try await echo.readMessage()
        #expect(String(decoding: message.payload, as: UTF8.self) == "part one, part two")
        try await echo.sendFrame(opcode: TestFrame.ping, payload: [1, 2, 3])
        let pong = try await echo.readFrame()
        #expect(pong.opcode == TestFrame.pong && pong.payload == [1, 2, 3])
        try await echo.sendFrame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000))
        #expect(try await echo.readFrame().closeCode == 1000)
        _ = try await echo.waitForClose()
        process.signal(SIGTERM)
    }
}

extension CLITests {
    @Test func echoCommandRefusesABadFrameLimit() async throws {
        let result = try await ExternalProcess.run([Self.binary, "echo", "--max-frame-bytes", "2GiB"], timeout: 30)
        #expect(result.status != 0)
        #expect(result.output.contains("--max-frame-bytes must be a size from 1KiB to 1GiB"), "\(result.output)")
    }

    @Test func echoCommandClosesFramesOverItsLimitWith1009() async throws {
        let (process, port) = try await Self.startEcho(["--threads", "1", "--max-frame-bytes", "64KiB"])
        defer { process.stop() }
        let echo = try await TestClient.connect(port: port)
        try await echo.sendUpgrade(path: "/")
        #expect(try await echo.readHead().status == 101)
        try await echo.sendFrame(opcode: TestFrame.binary, payload: [UInt8](repeating: 1, count: 64 << 10))
        #expect(try await echo.readMessage().payload.count == 64 << 10)
        try? await echo.sendFrame(opcode: TestFrame.binary, payload: [UInt8](repeating: 1, count: (64 << 10) + 1))
        #expect(try await echo.readFrame().closeCode == 1009)
        await echo.close()
        process.signal(SIGTERM)
    }
}
