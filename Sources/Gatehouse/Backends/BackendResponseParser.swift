import NIOCore
import NIOHTTP1

/// Reads a backend's answer to the forwarded upgrade: the response head, and for a refusal its bounded body.
///
/// Written for this one exchange instead of running NIOHTTP1's encoder and llhttp decoder on every backend
/// connection: measured, those handlers (and taking them out of the pipeline again) were about 12% of the CPU of a
/// TLS handshake through the proxy (benchmarks/README.md). It is strict: anything unusual is a malformed answer.
struct BackendResponseParser {
    /// Largest response head accepted.
    static let maxHeadBytes = 16 << 10
    /// Largest refusal body relayed.
    static let maxBodyBytes = 64 << 10

    /// What the bytes so far amount to.
    enum Progress {
        case needMore
        /// A `101` head; `rest` holds the bytes that followed it (the backend's first frames).
        case switching(HTTPResponseHead, rest: ByteBuffer)
        /// A complete refusal.
        case refusal(HTTPResponseHead, body: ByteBuffer)
        case malformed(String)
    }

    private enum BodyFraming {
        case length(Int)
        case chunked
        case untilClose
    }

    private var buffer = ByteBuffer()
    /// Readable bytes already searched for the end of the head: a backend that sends its answer a byte at a time
    /// costs one pass over it, not one per read.
    private var searchedHeadBytes = 0
    private var head: HTTPResponseHead?
    private var framing = BodyFraming.length(0)
    private var body = ByteBuffer()

    mutating func feed(_ bytes: inout ByteBuffer) -> Progress {
        self.buffer.writeBuffer(&bytes)
        return self.advance(closed: false)
    }

    /// The connection closed: a body that runs until close is complete now.
    mutating func finish() -> Progress {
        guard self.head != nil, case .untilClose = self.framing else { return .malformed("closed before the answer was complete") }
        return self.advance(closed: true)
    }

    var hasHead: Bool { self.head != nil }

    private mutating func advance(closed: Bool) -> Progress {
        if self.head == nil {
            guard let end = self.findHeadEnd() else {
                return self.buffer.readableBytes > Self.maxHeadBytes ? .malformed("answer head too large") : .needMore
            }
            guard end - self.buffer.readerIndex <= Self.maxHeadBytes else { return .malformed("answer head too large") }
            guard let text = self.buffer.readString(length: end - self.buffer.readerIndex) else { return .malformed("unreadable head") }
            self.buffer.moveReaderIndex(forwardBy: 4)
            let parsed: HTTPResponseHead
            switch Self.parseHead(text) {
            case .success(let head): parsed = head
            case .failure(let problem): return .malformed(problem.reason)
            }
            if parsed.status == .switchingProtocols {
                self.head = parsed
                return .switching(parsed, rest: self.buffer)
            }
            guard parsed.status.code >= 200 else { return .malformed("unexpected informational answer \(parsed.status.code)") }
            switch Self.framing(of: parsed) {
            case .failure(let problem): return .malformed(problem.reason)
            case .success(let framing): self.framing = framing
            }
            self.head = parsed
        }
        guard let head = self.head else { return .needMore }
        switch self.framing {
        case .length(let length):
            guard self.buffer.readableBytes >= length else { return .needMore }
            var part = self.buffer.readSlice(length: length) ?? ByteBuffer()
            self.body.writeBuffer(&part)
            return .refusal(head, body: self.body)
        case .untilClose:
            guard self.buffer.readableBytes <= Self.maxBodyBytes else { return .malformed("refusal body larger than 64 KiB") }
            return closed ? .refusal(head, body: self.buffer) : .needMore
        case .chunked:
            return self.decodeChunks(head)
        }
    }

    private mutating func decodeChunks(_ head: HTTPResponseHead) -> Progress {
        while true {
            let view = self.buffer.readableBytesView
            guard let lineFeed = view.firstIndex(of: 10) else {
                return self.buffer.readableBytes > 1024 ? .malformed("bad chunk size line") : .needMore
            }
            guard lineFeed > view.startIndex, view[lineFeed - 1] == 13 else { return .malformed("bad chunk size line") }
            let line = String(decoding: view[view.startIndex..<(lineFeed - 1)], as: UTF8.self)
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingSpaces() } ?? ""
            guard sizeText.utf8.count <= 8, sizeText.utf8.allSatisfy({ $0.isHexDigit }), let size = Int(sizeText, radix: 16) else {
                return .malformed("bad chunk size")
            }
            let headerLength = lineFeed + 1 - view.startIndex
            if size == 0 {
                // The terminal chunk; trailers are not expected from an upgrade refusal.
                guard self.buffer.readableBytes >= headerLength + 2 else { return .needMore }
                return .refusal(head, body: self.body)
            }
            guard size <= Self.maxBodyBytes - self.body.readableBytes else { return .malformed("refusal body larger than 64 KiB") }
            guard self.buffer.readableBytes >= headerLength + size + 2 else { return .needMore }
            self.buffer.moveReaderIndex(forwardBy: headerLength)
            var chunk = self.buffer.readSlice(length: size) ?? ByteBuffer()
            self.body.writeBuffer(&chunk)
            self.buffer.moveReaderIndex(forwardBy: 2)
        }
    }

    /// Index of the CR of the CRLF CRLF that ends the head. A plain loop over the bytes: the generic
    /// `firstRange(of:)` cost more than llhttp's whole parse (perf, benchmark scenario 5).
    private mutating func findHeadEnd() -> Int? {
        let start = max(0, self.searchedHeadBytes - 3)
        let found: Int? = self.buffer.withUnsafeReadableBytes { bytes in
            var index = start
            while index + 3 < bytes.count {
                if bytes[index + 3] == 10 && bytes[index + 2] == 13 && bytes[index + 1] == 10 && bytes[index] == 13 {
                    return index
                }
                index += 1
            }
            return nil
        }
        if let found { return self.buffer.readerIndex + found }
        self.searchedHeadBytes = self.buffer.readableBytes
        return nil
    }

    private struct Problem: Error {
        let reason: String
    }

    private static func parseHead(_ text: String) -> Result<HTTPResponseHead, Problem> {
        let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let statusLine = lines.first, HTTPToken.isFieldValue(statusLine) else {
            return .failure(Problem(reason: "malformed status line"))
        }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0" else {
            return .failure(Problem(reason: "not an HTTP/1.1 response"))
        }
        guard parts[1].utf8.count == 3, let code = Int(parts[1]), (100...599).contains(code) else {
            return .failure(Problem(reason: "bad status code"))
        }
        guard lines.count <= 101 else { return .failure(Problem(reason: "too many header fields")) }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            // No bare CR or LF, no control characters: whatever is relayed to the client must not split its answer.
            guard HTTPToken.isFieldValue(line) else { return .failure(Problem(reason: "control characters in the answer head")) }
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" "), !line.hasPrefix("\t") else {
                return .failure(Problem(reason: "malformed header field"))
            }
            let name = line[..<colon]
            guard HTTPToken.isToken(name) else { return .failure(Problem(reason: "malformed header field name")) }
            headers.add(name: String(name), value: String(line[line.index(after: colon)...].trimmingSpaces()))
        }
        let version: HTTPVersion = parts[0] == "HTTP/1.1" ? .http1_1 : .http1_0
        return .success(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: code), headers: headers))
    }

    private static func framing(of head: HTTPResponseHead) -> Result<BodyFraming, Problem> {
        if head.status == .noContent || head.status == .notModified { return .success(.length(0)) }
        let encodings = head.headers["transfer-encoding"]
        if !encodings.isEmpty {
            guard encodings.flatMap({ HTTPToken.list($0) }).map({ $0.lowercased() }) == ["chunked"] else {
                return .failure(Problem(reason: "unsupported Transfer-Encoding"))
            }
            return .success(.chunked)
        }
        let lengths = head.headers["content-length"]
        if lengths.isEmpty { return .success(.untilClose) }
        guard Set(lengths).count == 1, HTTPToken.isDigits(lengths[0]), lengths[0].utf8.count <= 18, let length = Int(lengths[0]) else {
            return .failure(Problem(reason: "bad Content-Length"))
        }
        guard length <= Self.maxBodyBytes else { return .failure(Problem(reason: "refusal body larger than 64 KiB")) }
        return .success(.length(length))
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(self)
    }
}
