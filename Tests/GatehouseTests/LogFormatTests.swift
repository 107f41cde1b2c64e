import Foundation
import Logging
import Testing
@testable import Gatehouse

@Suite("Log format")
struct LogFormatTests {
    func lines(format: LogFormat, _ body: (Logger) -> Void) throws -> [String] {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        let writer = LogWriter(fileDescriptor: descriptors[1])
        let control = LogControl()
        control.apply(LogConfig(level: .info, format: format, accessLog: true))
        let logger = Logger(label: "test") { label in GatehouseLogHandler(label: label, control: control, writer: writer) }
        body(logger)
        writer.flush()
        close(descriptors[1])
        let data = FileHandle(fileDescriptor: descriptors[0], closeOnDealloc: true).readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func jsonRecordsAreOneObjectPerLine() throws {
        let lines = try self.lines(format: .json) { logger in
            logger.info("connection closed", metadata: ["route": "chat", "bytes_in": "42", "reason": "a \"quoted\" word"])
            logger.debug("not written at info")
        }
        #expect(lines.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["msg"] as? String == "connection closed")
        #expect(object["route"] as? String == "chat")
        #expect(object["bytes_in"] as? Int == 42)
        #expect(object["reason"] as? String == "a \"quoted\" word")
        #expect(object["level"] as? String == "info")
    }

    @Test func textRecordsQuoteValuesWithSpaces() throws {
        let lines = try self.lines(format: .text) { logger in
            logger.info("handshake refused", metadata: ["reason": "origin not allowed", "status": "403"])
        }
        #expect(lines.count == 1)
        #expect(lines[0].contains("info test: handshake refused"))
        #expect(lines[0].hasSuffix("reason=\"origin not allowed\" status=403"))
    }
}
