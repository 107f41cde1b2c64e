import NIOCore

/// The proxy's own pings to a quiet client, and what idle detection last saw. Time is passed in, never read.
struct KeepaliveState {
    /// Payload of the ping waiting for its pong.
    private(set) var outstanding: [UInt8]?
    /// When that ping was sent.
    private(set) var sentAt = NIODeadline.uptimeNanoseconds(0)
    private var counter: UInt64 = 0
    /// Whether the client sent anything since the last tick, and since when it has been quiet.
    var clientHeard = false
    var clientQuietSince = NIODeadline.uptimeNanoseconds(0)
    /// Data frames seen at the last tick, and since when they have not changed.
    var dataFrames = 0
    var dataQuietSince = NIODeadline.uptimeNanoseconds(0)

    /// A payload for the next ping, remembered as outstanding.
    mutating func nextPing(now: NIODeadline) -> [UInt8] {
        self.counter &+= 1
        var payload = Array("gatehouse-".utf8)
        withUnsafeBytes(of: self.counter.bigEndian) { payload += $0 }
        self.outstanding = payload
        self.sentAt = now
        return payload
    }

    /// Whether a pong carries the outstanding ping's payload.
    func isAnswer(_ payload: [UInt8]) -> Bool {
        self.outstanding == payload
    }

    mutating func answered() {
        self.outstanding = nil
    }
}
