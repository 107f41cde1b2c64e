import Foundation
import Logging
import Testing
@testable import Gatehouse

/// The log path under hostile input: a stalled output, huge values, control characters.
@Suite("Log hardening")
struct LogHardeningTests {
    /// A pipe whose read end nobody reads until `drain` is called.
    final class StalledPipe: Sendable {
        let readEnd: Int32
        let writeEnd: Int32

        init() throws {
            var descriptors: [Int32] = [0, 0]
            guard pipe(&descriptors) == 0 else { throw TestError("pipe() failed") }
            self.readEnd = descriptors[0]
            self.writeEnd = descriptors[1]
        }

        /// Reads everything the writer sends until it has nothing queued (bounded), then closes both ends.
        func drain(_ writer: LogWriter, timeout: Duration = .seconds(20)) -> Int {
            var total = 0
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                let idle = writer.queuedBytes == 0
                var waiting = pollfd(fd: self.readEnd, events: Int16(POLLIN), revents: 0)
                // Once the writer has nothing left, only what is already in the pipe remains.
                guard poll(&waiting, 1, idle ? 0 : 100) > 0 else {
                    if idle { break } else { continue }
                }
                let count = buffer.withUnsafeMutableBytes { read(self.readEnd, $0.baseAddress, $0.count) }
                if count > 0 { total += count }
            }
            close(self.writeEnd)
            close(self.readEnd)
            return total
        }
    }

    func lines(format: LogFormat, _ body: (Logger) -> Void) throws -> [String] {
        let pipe = try StalledPipe()
        let writer = LogWriter(fileDescriptor: pipe.writeEnd)
        let control = LogControl()
        control.apply(LogConfig(level: .info, format: format, accessLog: true))
        let logger = Logger(label: "test") { label in GatehouseLogHandler(label: label, control: control, writer: writer) }
        body(logger)
        #expect(writer.flush())
        close(pipe.writeEnd)
        let data = FileHandle(fileDescriptor: pipe.readEnd, closeOnDealloc: true).readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    static let hostile = "a\rb\u{1B}[31mc\u{0}d\u{7F}e\u{9B}f\u{2028}g\u{2029}h\"i\\j\nk\tl\u{202E}m\u{FFFD}n"

    @Test func writerOnAStalledPipeStaysWithinItsByteBudget() throws {
        let pipe = try StalledPipe()
        let writer = LogWriter(fileDescriptor: pipe.writeEnd)
        let budget = LogConfig.defaultQueueBytes
        let record = String(repeating: "x", count: 4095)
        let records = (20 << 20) / 4096
        var peak = 0
        for _ in 0..<records {
            writer.write(record, budget: budget)
            peak = max(peak, writer.queuedBytes)
        }
        #expect(peak <= budget)
        // The pipe holds at most a few pages and the writer thread one chunk: everything else beyond the budget
        // was dropped and counted.
        let mostWritten = (budget + (1 << 20)) / 4096
        #expect(writer.droppedRecords >= records - mostWritten, "dropped \(writer.droppedRecords) of \(records)")
        #expect(writer.droppedRecords < records)
        let written = pipe.drain(writer)
        #expect(writer.queuedBytes == 0)
        #expect(written == (records - writer.droppedRecords) * 4096)
    }

    @Test func aFullNonBlockingPipeDelaysRecordsWithoutLosingThem() throws {
        let pipe = try StalledPipe()
        #expect(fcntl(pipe.writeEnd, F_SETFL, fcntl(pipe.writeEnd, F_GETFL) | O_NONBLOCK) == 0)
        let writer = LogWriter(fileDescriptor: pipe.writeEnd)
        // 1 MiB: far more than the pipe holds, well within the budget.
        let record = String(repeating: "w", count: 1023)
        for _ in 0..<1024 { writer.write(record) }
        let written = pipe.drain(writer)
        #expect(writer.droppedRecords == 0)
        #expect(written == 1 << 20)
    }

    @Test func aRecordLargerThanTheBudgetIsDroppedNotQueued() throws {
        let pipe = try StalledPipe()
        let writer = LogWriter(fileDescriptor: pipe.writeEnd)
        writer.write(String(repeating: "y", count: 70_000), budget: 64 << 10)
        #expect(writer.droppedRecords == 1)
        #expect(writer.queuedBytes == 0)
        _ = pipe.drain(writer)
    }

    @Test func textEscapesEveryControlCharacterOnOneLine() throws {
        let lines = try self.lines(format: .text) { logger in
            logger.info("refused \u{1B}[2J now\r", metadata: ["path": "\(Self.hostile)", "plain": "ok"])
        }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line.unicodeScalars.allSatisfy { !LogEscaping.mustEscape($0) })
        #expect(line.contains(#"test: refused \u001B[2J now\r path="#))
        #expect(line.contains(#"path="a\rb\u001B[31mc\u0000d\u007Fe\u009Bf\u2028g\u2029h\"i\\j\nk\tl\u202Em\uFFFDn""#))
        #expect(line.hasSuffix(" plain=ok"))
    }

    @Test func textQuotesValuesWithABackslash() throws {
        let lines = try self.lines(format: .text) { logger in logger.info("m", metadata: ["path": #"/a\u001B"#]) }
        #expect(lines.first?.hasSuffix(#"path="/a\\u001B""#) == true)
    }

    @Test func jsonEscapesEveryControlCharacterAndStaysValid() throws {
        let lines = try self.lines(format: .json) { logger in
            logger.info("refused\u{0}\u{2028}", metadata: ["path": "\(Self.hostile)", "id": "007", "bytes": "42", "msg": "spoofed"])
        }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line.unicodeScalars.allSatisfy { !LogEscaping.mustEscape($0) })
        #expect(line.contains(#""a\rb\u001B[31mc\u0000d\u007Fe\u009Bf\u2028g\u2029h\"i\\j\nk\tl\u202Em\uFFFDn""#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["path"] as? String == Self.hostile)
        #expect(object["msg"] as? String == "refused\u{0}\u{2028}")
        #expect(object["id"] as? String == "007")
        #expect(object["bytes"] as? Int == 42)
        #expect(object["level"] as? String == "info")
    }

    @Test func escapingHandlesCharactersBeyondTheBasicPlane() {
        let text = "\u{E0041}\u{1F600}"
        #expect(LogEscaping.json(text) == "\\uDB40\\uDC41\u{1F600}")
    }

    @Test func longValuesAreTruncatedWithAMarker() throws {
        let long = String(repeating: "é", count: 5000)
        let lines = try self.lines(format: .json) { logger in logger.info("m", metadata: ["v": "\(long)"]) }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        let value = try #require(object["v"] as? String)
        #expect(value.hasSuffix(LogEscaping.truncationMarker))
        #expect(value.utf8.count == GatehouseLogHandler.maxValueBytes + LogEscaping.truncationMarker.utf8.count)
        #expect(LogEscaping.truncated("abcé", maxBytes: 4) == "abc" + LogEscaping.truncationMarker)
        #expect(LogEscaping.truncated("abcé", maxBytes: 5) == "abcé")
    }

    @Test func queueBudgetIsConfigurable() throws {
        let config = try ProxyConfig.parse(yaml: TestConfig.echo(extraTop: "log: { queue_bytes: 1MiB }"), file: "t.yaml")
        #expect(config.log.queueBytes == 1 << 20)
        #expect(try ProxyConfig.parse(yaml: TestConfig.echo(), file: "t.yaml").log.queueBytes == 4 << 20)
        #expect(throws: ConfigError.self) { try ProxyConfig.parse(yaml: TestConfig.echo(extraTop: "log: { queue_bytes: 1KiB }"), file: "t.yaml") }
        let control = LogControl()
        control.apply(config.log)
        #expect(control.queueBytes == 1 << 20)
    }

    @Test func refusedLongPathIsTruncatedInTheAccessLog() async throws {
        try await TestProxy.with(TestConfig.echo()) { proxy in
            let client = try await TestClient.connect(port: try proxy.port("plain"))
            let path = "/" + String(repeating: "p", count: 15 << 10)
            try await client.sendUpgrade(path: path)
            let head = try await client.readHead()
            #expect(head.status == 404 || head.status == 400)
            await client.close()
            let line = try await proxy.logs.waitForLine(containing: "handshake refused")
            #expect(line.contains("path=/" + String(repeating: "p", count: AccessLog.maxPathBytes - 1) + LogEscaping.truncationMarker))
            #expect(line.utf8.count < 1024)
        }
    }
}
