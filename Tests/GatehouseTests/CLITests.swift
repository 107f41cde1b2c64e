import Foundation
import Testing

/// The `gatehouse` executable as an operator runs it.
@Suite("Command line")
struct CLITests {
    /// The executable built next to the test bundle.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gatehouse").path
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
