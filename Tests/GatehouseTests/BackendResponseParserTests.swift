import NIOCore
import NIOHTTP1
import Testing

@testable import Gatehouse

/// The hand-written reader of a backend's answer: verdicts must not depend on how the bytes arrive, and anything
/// that could split or forge the answer relayed to the client is malformed.
@Suite("Backend response parser")
struct BackendResponseParserTests {
    /// The parser's verdict on `text` fed in pieces of `split` bytes (0 = all at once), with `closed` after.
    func verdict(_ text: String, split: Int = 0, closed: Bool = false) -> String {
        var parser = BackendResponseParser()
        let bytes = Array(text.utf8)
        let step = split == 0 ? max(bytes.count, 1) : split
        var offset = 0
        while offset < bytes.count {
            var piece = ByteBuffer(bytes: bytes[offset..<min(offset + step, bytes.count)])
            offset += step
            let progress = parser.feed(&piece)
            if case .needMore = progress { continue }
            return Self.describe(progress)
        }
        return closed ? Self.describe(parser.finish()) : "needMore"
    }

    static func describe(_ progress: BackendResponseParser.Progress) -> String {
        switch progress {
        case .needMore: return "needMore"
        case .switching(let head, let rest): return "101 rest=\(String(buffer: rest)) \(head.headers["sec-websocket-accept"])"
        case .refusal(let head, let body): return "\(head.status.code) body=\(String(buffer: body))"
        case .malformed(let reason): return "malformed: \(reason)"
        }
    }

    static let switching =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\n\r\n\u{81}\u{02}hi"

    @Test func switchingKeepsTheBytesAfterTheHead() {
        for split in [0, 1, 2, 3, 7] {
            #expect(self.verdict(Self.switching, split: split).hasPrefix("101"), "split \(split)")
        }
        #expect(self.verdict(Self.switching) == "101 rest=\u{81}\u{02}hi [\"abc=\"]")
    }

    @Test(arguments: [
        ("HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope", "403 body=nope"),
        ("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "404 body=abcde"),
        ("HTTP/1.1 204 No Content\r\n\r\n", "204 body="),
        ("HTTP/1.0 500 Oops\r\nContent-Length: 0\r\n\r\n", "500 body="),
    ])
    func refusalsAreReadWhateverTheSplit(_ text: String, _ expected: String) {
        for split in [0, 1, 2, 5, 11] {
            #expect(self.verdict(text, split: split) == expected, "split \(split)")
        }
    }

    @Test func aBodyWithoutLengthEndsWithTheConnection() {
        let text = "HTTP/1.1 502 Bad Gateway\r\n\r\nupstream down"
        #expect(self.verdict(text) == "needMore")
        #expect(self.verdict(text, split: 3, closed: true) == "502 body=upstream down")
        #expect(self.verdict("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nshort", closed: true).hasPrefix("malformed"))
    }

    @Test(arguments: [
        "HTTP/1.1 101 OK\r\nX-Evil: a\rb\r\n\r\n",  // bare CR inside a value
        "HTTP/1.1 101 OK\r\nX-Evil: a\nInjected: 1\r\n\r\n",  // bare LF
        "HTTP/1.1 101 OK\r\nX-Evil: a\u{0}b\r\n\r\n",  // NUL
        "HTTP/1.1 101 O\u{1}K\r\n\r\n",  // control in the reason
        "HTTP/1.1 101 OK\r\n folded: x\r\n\r\n",  // obsolete line folding
        "HTTP/1.1 101 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 101 OK\r\nNoColon\r\n\r\n",
        "HTTP/2 101 OK\r\n\r\n",
        "HTTP/1.1 1010 OK\r\n\r\n",
        "HTTP/1.1 +01 OK\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 403 No\r\nContent-Length: +4\r\n\r\nnope",
        "HTTP/1.1 403 No\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nnope",
        "HTTP/1.1 403 No\r\nContent-Length: 999999999\r\n\r\n",
        "HTTP/1.1 403 No\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 403 No\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\n",  // would overflow a sum
        "HTTP/1.1 403 No\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        "HTTP/1.1 403 No\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",  // bare LF after a chunk size
    ])
    func hostileAnswersAreMalformed(_ text: String) {
        #expect(self.verdict(text).hasPrefix("malformed"), "\(text.debugDescription)")
        #expect(self.verdict(text, split: 1).hasPrefix("malformed"), "\(text.debugDescription) split 1")
    }

    @Test func headAndBodyAreBounded() {
        let huge = "HTTP/1.1 101 OK\r\nX-Big: " + String(repeating: "a", count: 17 << 10) + "\r\n\r\n"
        #expect(self.verdict(huge, split: 4096) == "malformed: answer head too large")
        #expect(self.verdict(huge) == "malformed: answer head too large")
        let chunks = String(repeating: "8000\r\n" + String(repeating: "b", count: 0x8000) + "\r\n", count: 3)
        #expect(self.verdict("HTTP/1.1 403 No\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks) == "malformed: refusal body larger than 64 KiB")
        let unbounded = "HTTP/1.1 403 No\r\n\r\n" + String(repeating: "c", count: 65 << 10)
        #expect(self.verdict(unbounded) == "malformed: refusal body larger than 64 KiB")
    }

    @Test func serializerDropsFieldsThatWouldForgeLines() {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "a.example")
        headers.add(name: "X-Subject", value: "alice\r\nX-Admin: yes")
        headers.add(name: "Bad Name", value: "x")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws?x=1", headers: headers)
        let text = String(buffer: BackendRequestSerializer.serialize(head, allocator: ByteBufferAllocator()))
        #expect(text == "GET /ws?x=1 HTTP/1.1\r\nHost: a.example\r\n\r\n")
    }
}
