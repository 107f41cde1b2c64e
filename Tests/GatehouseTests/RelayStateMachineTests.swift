import NIOCore
import Testing
@testable import Gatehouse

/// The relay's decisions without sockets or clocks: bytes are plain buffers, time is passed in, and what the
/// machine asks for is compared step by step.
@Suite("Relay state machine")
struct RelayStateMachineTests {
    /// One thing the machine asked for, in a form a test can compare.
    enum Step: Equatable, CustomStringConvertible {
        /// A frame of the proxy's own or a relayed close, parsed (masks removed).
        case frame(opcode: UInt8, payload: [UInt8], masked: Bool, to: RelaySide)
        case flush(RelaySide)
        case read(RelaySide)
        case shutOutput(RelaySide)
        case close(RelaySide)
        case closeBoth
        case armCloseTimer(TimeAmount)
        case scheduleTick(NIODeadline)
        case finished(RelayEnding)

        static func close(_ code: UInt16, _ reason: String, to side: RelaySide) -> Step {
            .frame(opcode: TestFrame.close, payload: TestFrame.closePayload(code, reason), masked: side == .backend, to: side)
        }

        var description: String {
            switch self {
            case .frame(let opcode, let payload, let masked, let side):
                if opcode == TestFrame.close, payload.count >= 2 {
                    return "close(\(UInt16(payload[0]) << 8 | UInt16(payload[1])) \(String(decoding: payload[2...], as: UTF8.self)) -> \(side))"
                }
                return "frame(op \(opcode), \(payload.count) bytes, masked \(masked) -> \(side))"
            case .flush(let side): return "flush(\(side))"
            case .read(let side): return "read(\(side))"
            case .shutOutput(let side): return "shutOutput(\(side))"
            case .close(let side): return "close(\(side))"
            case .closeBoth: return "closeBoth"
            case .armCloseTimer(let delay): return "armCloseTimer(\(delay))"
            case .scheduleTick(let deadline): return "scheduleTick(\(deadline.uptimeNanoseconds))"
            case .finished(let ending): return "finished(\(ending))"
            }
        }
    }

    /// A machine plus what it forwarded, driven the way ``RelayConnection`` drives it.
    struct Driver {
        var machine: RelayStateMachine
        /// Bytes forwarded on the per-read path, per target.
        var forwarded: [RelaySide: [UInt8]] = [.client: [], .backend: []]

        init(settings: RelaySettings = RelayStateMachineTests.settings(), start: NIODeadline? = Driver.t0) {
            self.machine = RelayStateMachine(settings: settings)
            if let start {
                self.machine.start(now: start)
                _ = self.settle()
            }
        }

        static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

        /// Reads `bytes` from `side` up to the end of its read burst; returns what was settled.
        mutating func read(_ bytes: [UInt8], from side: RelaySide, settle: Bool = true) -> [Step] {
            var buffer = ByteBuffer(bytes: bytes)
            while case .write(let run, let target) = self.machine.received(&buffer, from: side) {
                self.forwarded[target, default: []] += Array(run.readableBytesView)
            }
            var steps = settle ? self.settle() : []
            if let flush = self.machine.readComplete(from: side) { steps.append(.flush(flush.side)) }
            return steps
        }

        /// Takes every pending action.
        mutating func settle() -> [Step] {
            var steps: [Step] = []
            var guardCount = 0
            while let action = self.machine.nextAction() {
                guardCount += 1
                precondition(guardCount < 100, "the machine does not settle")
                switch action {
                case .write(let bytes, let side):
                    var buffer = bytes
                    guard let frame = TestFrame.parse(&buffer) else {
                        Issue.record("not a frame: \(Array(bytes.readableBytesView))")
                        continue
                    }
                    steps.append(.frame(opcode: frame.opcode, payload: frame.payload, masked: frame.masked, to: side))
                case .flush(let flush): steps.append(.flush(flush.side))
                case .read(let side): steps.append(.read(side))
                case .shutOutput(let side): steps.append(.shutOutput(side))
                case .close(let side): steps.append(.close(side))
                case .closeBoth: steps.append(.closeBoth)
                case .armCloseTimer(let delay): steps.append(.armCloseTimer(delay))
                case .scheduleTick(let deadline): steps.append(.scheduleTick(deadline))
                case .finished(let ending): steps.append(.finished(ending))
                }
            }
            return steps
        }

        mutating func inputClosed(_ side: RelaySide) -> [Step] {
            self.machine.inputClosed(side)
            return self.settle()
        }

        mutating func inactive(_ side: RelaySide) -> [Step] {
            self.machine.inactive(side)
            return self.settle()
        }

        mutating func close(_ code: WebSocketCloseCode, _ reason: String) -> [Step] {
            self.machine.close(code: code, reason: reason)
            return self.settle()
        }

        mutating func tick(_ now: NIODeadline) -> [Step] {
            self.machine.tick(now: now)
            return self.settle()
        }

        /// Both channels go away; returns how the connection ended.
        mutating func bothGone() -> RelayEnding? {
            _ = self.inactive(.client)
            let steps = self.inactive(.backend)
            guard case .finished(let ending) = steps.last else { return nil }
            return ending
        }
    }

    static func settings(
        keepalive: TimeAmount? = nil, idle: TimeAmount? = nil, expiresAt: NIODeadline? = nil, closeTimeout: TimeAmount = .seconds(5)
    ) -> RelaySettings {
        var settings = RelaySettings(limits: LimitsConfig(), negotiatedExtensions: [], expiresAt: expiresAt)
        settings.keepaliveInterval = keepalive
        settings.idleTimeout = idle
        settings.closeTimeout = closeTimeout
        return settings
    }

    static func clientFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        TestFrame.encode(fin: fin, opcode: opcode, payload: payload)
    }

    static func backendFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        TestFrame.encode(fin: fin, opcode: opcode, payload: payload, mask: nil)
    }

    static func clientClose(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        Self.clientFrame(TestFrame.close, TestFrame.closePayload(code, reason))
    }

    static func backendClose(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        Self.backendFrame(TestFrame.close, TestFrame.closePayload(code, reason))
    }

    // MARK: Start and relaying

    @Test func startReadsBothSidesAndSchedulesTheTick() {
        var driver = Driver(start: nil)
        driver.machine = RelayStateMachine(settings: Self.settings(keepalive: .seconds(10)))
        driver.machine.start(now: Driver.t0)
        #expect(driver.settle() == [.scheduleTick(Driver.t0 + .seconds(5)), .read(.client), .read(.backend)])
        #expect(driver.machine.phase == .relaying)
    }

    @Test func dataIsForwardedUntouchedAndFlushedAtReadComplete() {
        var driver = Driver()
        let frame = Self.clientFrame(TestFrame.text, Array("hello".utf8))
        #expect(driver.read(frame, from: .client) == [.flush(.backend)])
        #expect(driver.forwarded[.backend] == frame)  // still masked
        #expect(!driver.machine.needsSettling)
        let answer = Self.backendFrame(TestFrame.binary, [1, 2, 3])
        #expect(driver.read(answer, from: .backend) == [.flush(.client)])
        #expect(driver.forwarded[.client] == answer)
    }

    @Test func nothingOfTheProxysOwnIsWrittenWhileSplicing() {
        var driver = Driver(start: nil)
        let early = Self.clientFrame(TestFrame.text, [0x61])
        #expect(driver.read(early, from: .client) == [.flush(.backend)])
        #expect(driver.forwarded[.backend] == early)
        #expect(driver.close(.goingAway, "server shutting down") == [])
        driver.machine.start(now: Driver.t0)
        #expect(
            driver.settle() == [
                .close(1001, "server shutting down", to: .client), .close(1001, "server shutting down", to: .backend),
                .flush(.client), .flush(.backend), .armCloseTimer(.seconds(5)), .read(.client), .read(.backend),
            ])
        #expect(driver.machine.phase == .closing)
    }

    // MARK: Close handshakes

    @Test func clientCloseIsRelayedAndTheBackendsAnswerEndsIt() {
        var driver = Driver()
        let close = Self.clientClose(1000, "bye")
        #expect(
            driver.read(close, from: .client) == [
                .frame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000, "bye"), masked: true, to: .backend),
                .flush(.backend), .armCloseTimer(.seconds(5)),
            ])
        // Nothing the client sends after its close is relayed.
        #expect(driver.read(Self.clientFrame(TestFrame.text, [1]), from: .client) == [])
        #expect(driver.forwarded[.backend] == [])
        #expect(
            driver.read(Self.backendClose(1000, "bye"), from: .backend) == [
                .close(1000, "bye", to: .client), .flush(.client), .shutOutput(.client), .shutOutput(.backend),
            ])
        #expect(driver.bothGone() == RelayEnding(code: .normal, by: .client, reason: "bye"))
    }

    @Test func backendCloseIsRelayedAndTheClientsAnswerEndsIt() {
        var driver = Driver()
        #expect(
            driver.read(Self.backendClose(4000, "restart"), from: .backend) == [
                .close(4000, "restart", to: .client), .flush(.client), .armCloseTimer(.seconds(5)),
            ])
        let answer = driver.read(Self.clientClose(4000, "restart"), from: .client)
        #expect(answer.first == .frame(opcode: TestFrame.close, payload: TestFrame.closePayload(4000, "restart"), masked: true, to: .backend))
        #expect(Array(answer.dropFirst()) == [.flush(.backend), .shutOutput(.client), .shutOutput(.backend)])
        #expect(driver.bothGone() == RelayEnding(code: .other(4000), by: .backend, reason: "restart"))
    }

    @Test func closesCrossingEachOtherAreEachRelayedOnce() {
        var driver = Driver()
        // Both closes are read before the machine settles.
        _ = driver.read(Self.clientClose(1000, "c"), from: .client, settle: false)
        _ = driver.read(Self.backendClose(1001, "b"), from: .backend, settle: false)
        let steps = driver.settle()
        #expect(
            steps == [
                .close(1001, "b", to: .client),
                .frame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000, "c"), masked: true, to: .backend),
                .flush(.client), .flush(.backend), .shutOutput(.client), .shutOutput(.backend), .armCloseTimer(.seconds(5)),
            ])
        #expect(driver.bothGone() == RelayEnding(code: .normal, by: .client, reason: "c"))
    }

    @Test func aProxyCloseWaitsForTheFrameBoundaryOfAPartlyForwardedFrame() {
        var driver = Driver()
        let frame = Self.backendFrame(TestFrame.binary, Array(repeating: 7, count: 10))
        // The header and 4 payload bytes are forwarded; 6 are still to come.
        _ = driver.read(Array(frame[0..<6]), from: .backend)
        #expect(driver.forwarded[.client] == Array(frame[0..<6]))
        // The backend stream is on a boundary: its close goes out; the client's waits for the rest of the frame.
        #expect(
            driver.close(.goingAway, "server shutting down") == [
                .close(1001, "server shutting down", to: .backend), .flush(.backend), .armCloseTimer(.seconds(5)),
            ])
        #expect(driver.read(Array(frame[6...]), from: .backend) == [.close(1001, "server shutting down", to: .client), .flush(.client)])
        #expect(driver.forwarded[.client] == frame)
    }

    @Test func aPeerCloseIsRelayedWhileTheOtherDirectionIsMidFrame() {
        var driver = Driver()
        let frame = Self.backendFrame(TestFrame.binary, Array(repeating: 7, count: 10))
        _ = driver.read(Array(frame[0..<6]), from: .backend)
        // The client's close goes to the backend at once (that stream is on a boundary).
        let steps = driver.read(Self.clientClose(1000), from: .client)
        #expect(steps.first == .frame(opcode: TestFrame.close, payload: TestFrame.closePayload(1000, ""), masked: true, to: .backend))
        // The backend finishes its frame, then answers: the answer is relayed after the frame's last bytes.
        _ = driver.read(Array(frame[6...]), from: .backend)
        #expect(driver.forwarded[.client] == frame)
        let answer = driver.read(Self.backendClose(1000), from: .backend)
        #expect(answer == [.close(1000, "", to: .client), .flush(.client), .shutOutput(.client), .shutOutput(.backend)])
    }

    @Test func clientEOFWithoutCloseTellsTheBackend1001() {
        var driver = Driver()
        #expect(
            driver.inputClosed(.client) == [
                .close(1001, "client went away", to: .backend), .flush(.backend), .armCloseTimer(.seconds(5)),
            ])
        #expect(driver.read(Self.backendClose(1001), from: .backend) == [.shutOutput(.client), .shutOutput(.backend)])
        // Once both outputs are shut, the sockets are closed at once when an input ends.
        #expect(driver.inputClosed(.backend) == [.close(.client), .close(.backend)])
        #expect(driver.bothGone() == RelayEnding(code: .goingAway, by: .client, reason: "client vanished"))
    }

    @Test func backendEOFWithoutCloseTellsTheClient1014() {
        var driver = Driver()
        #expect(
            driver.inactive(.backend) == [
                .close(1014, "backend went away", to: .client), .flush(.client), .armCloseTimer(.seconds(5)),
            ])
        #expect(driver.read(Self.clientClose(1014), from: .client) == [.shutOutput(.client)])
        #expect(driver.inactive(.client).last == .finished(RelayEnding(code: .badGateway, by: .backend, reason: "backend vanished")))
    }

    @Test func bothChannelsGoneWithoutACloseEndsUnknownOnlyOnce() {
        var driver = Driver()
        _ = driver.inactive(.client)
        let steps = driver.inactive(.backend)
        #expect(steps == [.finished(RelayEnding(code: .goingAway, by: .client, reason: "client vanished"))])
        #expect(driver.inactive(.backend) == [])
        var silent = Driver(start: nil)
        let abandoned = silent.machine.abandon()
        #expect(abandoned == .closeBoth)
        #expect(silent.settle() == [.finished(.unknown)])
    }

    @Test func anHTTP2StreamOnlyGetsEndStreamAndIsNeverClosedByTheProxy() {
        var driver = Driver(start: nil)
        driver.machine.attached(.client, isStream: true, writable: true)
        driver.machine.start(now: Driver.t0)
        _ = driver.settle()
        _ = driver.read(Self.clientClose(1000), from: .client)
        #expect(driver.read(Self.backendClose(1000), from: .backend).suffix(2) == [.shutOutput(.client), .shutOutput(.backend)])
        // The backend socket's input ends: it is closed; the stream waits for the client's END_STREAM.
        #expect(driver.inputClosed(.backend) == [.close(.backend)])
        #expect(driver.inputClosed(.client) == [.close(.backend)])
    }

    // MARK: Violations

    @Test func aViolationClosesBothSidesWithReasons() {
        var driver = Driver()
        // An unmasked client frame.
        let steps = driver.read(Self.backendFrame(TestFrame.text, [1]), from: .client)
        #expect(
            steps == [
                .close(1002, "unmasked client frame", to: .client), .close(1002, "client protocol error", to: .backend),
                .flush(.client), .flush(.backend), .armCloseTimer(.seconds(5)),
            ])
        #expect(driver.forwarded[.backend] == [])
        #expect(driver.machine.ending == RelayEnding(code: .protocolError, by: .proxy, reason: "client: unmasked client frame"))
    }

    @Test func aViolationWhileClosingTellsOnlyTheSideStillOpen() {
        var driver = Driver()
        _ = driver.read(Self.clientClose(1000, "done"), from: .client)
        // The backend answers with a masked frame (a server must not mask): it already got the client's close, so
        // only the client is told, and the close the client started stays the connection's ending.
        let steps = driver.read(Self.clientFrame(TestFrame.text, [1]), from: .backend)
        #expect(steps == [.close(1002, "backend protocol error", to: .client), .flush(.client), .shutOutput(.client), .shutOutput(.backend)])
        #expect(driver.forwarded[.client] == [])
        #expect(driver.bothGone() == RelayEnding(code: .normal, by: .client, reason: "done"))
    }

    @Test func anInvalidCloseCodeIsAViolationAndABadReason1007() {
        var driver = Driver()
        let steps = driver.read(Self.backendClose(1005), from: .backend)
        #expect(steps.first == .close(1002, "backend protocol error", to: .client))
        var utf8 = Driver()
        let bad = Self.backendFrame(TestFrame.close, [0x03, 0xE8, 0xFF, 0xFE])
        #expect(utf8.read(bad, from: .backend).first == .close(1007, "backend protocol error", to: .client))
    }

    // MARK: Timers and operations

    @Test func closeTimeoutClosesBothChannels() {
        var driver = Driver(settings: Self.settings(closeTimeout: .milliseconds(250)))
        #expect(driver.read(Self.clientClose(1000), from: .client).last == .armCloseTimer(.milliseconds(250)))
        #expect(driver.machine.closeTimedOut() == .closeBoth)
        // Armed once per connection.
        #expect(!driver.inputClosed(.backend).contains(.armCloseTimer(.milliseconds(250))))
    }

    @Test func keepalivePingsAQuietClientAndClosesWithoutAPong() {
        let t0 = Driver.t0
        var driver = Driver(settings: Self.settings(keepalive: .seconds(10)))
        #expect(driver.tick(t0 + .seconds(5)) == [.scheduleTick(t0 + .seconds(10))])
        let ping = driver.tick(t0 + .seconds(10))
        guard case .frame(let opcode, let payload, false, .client) = ping.first else {
            Issue.record("no ping: \(ping)")
            return
        }
        #expect(opcode == TestFrame.ping)
        #expect(Array(ping.dropFirst()) == [.flush(.client), .scheduleTick(t0 + .seconds(15))])
        // The pong is the proxy's: not forwarded; it resets the wait.
        #expect(driver.read(Self.clientFrame(TestFrame.pong, payload), from: .client) == [])
        #expect(driver.forwarded[.backend] == [])
        // The pong counts as client traffic: quiet since 25 s, pinged again at 40 s, unanswered: 1001 at 60 s.
        #expect(driver.tick(t0 + .seconds(25)) == [.scheduleTick(t0 + .seconds(30))])
        #expect(driver.tick(t0 + .seconds(40)).first?.description.hasPrefix("frame(op 9") == true)
        #expect(driver.tick(t0 + .seconds(55)) == [.scheduleTick(t0 + .seconds(60))])
        #expect(
            driver.tick(t0 + .seconds(60)) == [
                .close(1001, "keepalive timeout", to: .client), .close(1001, "keepalive timeout", to: .backend),
                .flush(.client), .flush(.backend), .armCloseTimer(.seconds(5)),
            ])
        #expect(driver.machine.ending == RelayEnding(code: .goingAway, by: .proxy, reason: "keepalive timeout"))
        // Once closing, the tick stops.
        #expect(driver.tick(t0 + .seconds(65)) == [])
    }

    @Test func noPingIsInsertedIntoAHalfForwardedFrame() {
        let t0 = Driver.t0
        var driver = Driver(settings: Self.settings(keepalive: .seconds(10)))
        let frame = Self.backendFrame(TestFrame.binary, Array(repeating: 1, count: 20))
        _ = driver.read(Array(frame[0..<5]), from: .backend)
        #expect(driver.tick(t0 + .seconds(10)) == [.scheduleTick(t0 + .seconds(15))])
        _ = driver.read(Array(frame[5...]), from: .backend)
        #expect(driver.tick(t0 + .seconds(15)).first?.description.hasPrefix("frame(op 9") == true)
    }

    @Test func clientPingsAndPongsAreRelayed() {
        var driver = Driver(settings: Self.settings(keepalive: .seconds(10)))
        let pong = Self.clientFrame(TestFrame.pong, [9])
        _ = driver.read(pong, from: .client)
        #expect(driver.forwarded[.backend] == pong)
    }

    @Test func idleTimeoutClosesWithoutDataFrames() {
        let t0 = Driver.t0
        var driver = Driver(settings: Self.settings(idle: .seconds(60)))
        _ = driver.tick(t0 + .seconds(15))
        _ = driver.read(Self.clientFrame(TestFrame.text, [1]), from: .client)
        #expect(driver.tick(t0 + .seconds(30)) == [.scheduleTick(t0 + .seconds(45))])  // data seen: quiet since 30 s
        #expect(driver.tick(t0 + .seconds(75)) == [.scheduleTick(t0 + .seconds(90))])
        // A ping is not data.
        _ = driver.read(Self.clientFrame(TestFrame.ping, []), from: .client)
        #expect(driver.tick(t0 + .seconds(90)).first == .close(1001, "idle timeout", to: .client))
    }

    @Test func drainClosesBothSidesWith1001() {
        var driver = Driver()
        #expect(
            driver.close(.goingAway, "server shutting down") == [
                .close(1001, "server shutting down", to: .client), .close(1001, "server shutting down", to: .backend),
                .flush(.client), .flush(.backend), .armCloseTimer(.seconds(5)),
            ])
        _ = driver.read(Self.clientClose(1001), from: .client)
        #expect(driver.read(Self.backendClose(1001), from: .backend) == [.shutOutput(.client), .shutOutput(.backend)])
        #expect(driver.bothGone() == RelayEnding(code: .goingAway, by: .proxy, reason: "server shutting down"))
    }

    @Test func adminKickCloses1008AndASecondCloseChangesNothing() {
        var driver = Driver()
        let steps = driver.close(.policyViolation, "closed by administrator")
        #expect(steps.prefix(2) == [.close(1008, "closed by administrator", to: .client), .close(1008, "closed by administrator", to: .backend)])
        #expect(driver.close(.goingAway, "server shutting down") == [])
        #expect(driver.machine.ending == RelayEnding(code: .policyViolation, by: .proxy, reason: "closed by administrator"))
    }

    @Test func tokenExpiryCloses1008AtItsDeadline() {
        let t0 = Driver.t0
        var driver = Driver(start: nil)
        driver.machine = RelayStateMachine(settings: Self.settings(expiresAt: t0 + .seconds(3)))
        driver.machine.start(now: t0)
        #expect(driver.settle().first == .scheduleTick(t0 + .seconds(3)))
        #expect(driver.tick(t0 + .seconds(3)).prefix(2) == [.close(1008, "token expired", to: .client), .close(1008, "token expired", to: .backend)])
        #expect(driver.machine.ending == RelayEnding(code: .policyViolation, by: .proxy, reason: "token expired"))
    }

    // MARK: Backpressure

    @Test func readsFromOneSideWaitWhileTheOtherIsNotWritable() {
        var machine = RelayStateMachine(settings: Self.settings())
        let first = machine.readRequested(by: .client)
        #expect(first)
        let resumedEarly = machine.writabilityChanged(.backend, writable: false)
        #expect(resumedEarly == nil)
        let held = machine.readRequested(by: .client)
        #expect(!held)
        #expect(machine.client.readPaused)
        let other = machine.readRequested(by: .backend)
        #expect(other)
        let resumed = machine.writabilityChanged(.backend, writable: true)
        #expect(resumed == .client)
        #expect(!machine.client.readPaused)
        // A gone peer never holds reads back.
        _ = machine.writabilityChanged(.backend, writable: false)
        machine.inactive(.backend)
        let afterGone = machine.readRequested(by: .client)
        #expect(afterGone)
    }

    @Test func aFlushOverTheHighWatermarkAsksForTheBacklog() {
        var driver = Driver()
        driver.machine.attached(.backend, isStream: false, writable: true)
        _ = driver.machine.writabilityChanged(.backend, writable: false)
        var buffer = ByteBuffer(bytes: Self.clientFrame(TestFrame.text, [1]))
        while case .write = driver.machine.received(&buffer, from: .client) {}
        let overWatermark = driver.machine.readComplete(from: .client)
        #expect(overWatermark == RelayStateMachine.Flush(side: .backend, sampleBacklog: true))
        driver.machine.attached(.client, isStream: true, writable: false)
        buffer = ByteBuffer(bytes: Self.backendFrame(TestFrame.text, [1]))
        while case .write = driver.machine.received(&buffer, from: .backend) {}
        let stream = driver.machine.readComplete(from: .backend)
        #expect(stream == RelayStateMachine.Flush(side: .client, sampleBacklog: false))
    }
}
