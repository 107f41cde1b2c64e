import NIOCore

extension RelaySession {
    /// A held control frame: a close (validated, relayed or answered) or a pong that may answer the proxy's ping.
    func control(opcode: UInt8, frame: ByteBuffer, payload: [UInt8], from side: RelaySide) {
        if opcode == FrameOpcode.pong {
            if side == .client && self.keepalive.isAnswer(payload) {
                self.keepalive.answered()
                self.fromClient.holdPongs = false
            } else {
                self.forward(frame, to: side.peer)
            }
            return
        }
        guard opcode == FrameOpcode.close else { return }
        var code: UInt16?
        var reason = ""
        if payload.count >= 2 {
            let value = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard CloseCode.isValidOnTheWire(value) else {
                self.violation(by: side, code: CloseCode.protocolError, reason: "invalid close code \(value)")
                return
            }
            guard let text = String(validatingUTF8CString: payload[2...]) else {
                self.violation(by: side, code: CloseCode.invalidPayload, reason: "close reason is not UTF-8")
                return
            }
            code = value
            reason = text
        }
        self[side].receivedClose = true
        if self.ending == nil { self.ending = Ending(code: code, by: side.rawValue, reason: reason) }
        // Unless the proxy already closed toward the peer, the frame goes on as sent (a client's keeps its mask):
        // either it starts the close handshake, or it answers the close the peer started.
        if !self[side.peer].sentClose && self[side.peer].pendingClose == nil {
            self.forward(frame, to: side.peer)
            self[side.peer].sentClose = true
            self.flush(side.peer)
            self.armCloseTimer()
        }
        self.finishIfDone()
    }

    /// A peer broke the protocol or a limit: it gets `code`, the other side gets the same code, both with a reason.
    func violation(by side: RelaySide, code: UInt16, reason: String) {
        self[side].receivedClose = true  // nothing more from the violator is read
        let otherReason = code == CloseCode.messageTooBig || code == CloseCode.policyViolation ? reason : "\(side.rawValue) protocol error"
        self.initiateClose(
            code: code, reason: reason, to: side, peerCode: code, peerReason: otherReason,
            ending: Ending(code: code, by: "proxy", reason: "\(side.rawValue): \(reason)")
        )
    }

    /// A side went away without a close frame: the other side is told (1001 for a client, 1014 for a backend).
    func vanished(_ side: RelaySide) {
        self[side].receivedClose = true
        self[side].sentClose = true
        if self.ending == nil {
            let code = side == .client ? CloseCode.goingAway : CloseCode.badGateway
            self.ending = Ending(code: code, by: side.rawValue, reason: "\(side.rawValue) vanished")
        }
        let peer = side.peer
        guard self[peer].active, !self[peer].sentClose, self[peer].pendingClose == nil else { return }
        let code = side == .client ? CloseCode.goingAway : CloseCode.badGateway
        let reason = side == .client ? "client went away" : "backend went away"
        self.queueClose(to: peer, code: code, reason: reason)
        self.armCloseTimer()
    }

    /// The proxy closes the connection: close frames to both sides (codes may differ), then it waits for the
    /// answers, bounded by `close_timeout`.
    func initiateClose(code: UInt16, reason: String, to side: RelaySide, peerCode: UInt16, peerReason: String, ending: Ending) {
        if self.ending == nil { self.ending = ending }
        self.queueClose(to: side, code: code, reason: reason)
        self.queueClose(to: side.peer, code: peerCode, reason: peerReason)
        self.armCloseTimer()
        self.finishIfDone()
    }

    /// Closes with the same code and reason toward both sides (idle, expiry, drain, administrator).
    func close(code: UInt16, reason: String) {
        self.initiateClose(
            code: code, reason: reason, to: .client, peerCode: code, peerReason: reason,
            ending: Ending(code: code, by: "proxy", reason: reason)
        )
    }

    /// Sends a close frame to `side` now, or as soon as the stream toward it is on a frame boundary.
    func queueClose(to side: RelaySide, code: UInt16, reason: String) {
        guard self[side].active, !self[side].sentClose, self[side].pendingClose == nil, let context = self[side].context else {
            return
        }
        self[side].pendingClose = ProxyFrame.close(code: code, reason: reason, masked: side == .backend, allocator: context.channel.allocator)
        self.sendPendingClose(to: side)
    }

    /// Writes a pending close once everything forwarded toward `side` ends on a frame boundary.
    func sendPendingClose(to side: RelaySide) {
        guard self.started, let frame = self[side].pendingClose, let context = self[side].context else { return }
        let scanner = side == .client ? self.fromBackend : self.fromClient
        guard scanner.forwardedWholeFrames else { return }
        self[side].pendingClose = nil
        self[side].sentClose = true
        if !self[side].outputClosed {
            context.write(NIOAny(frame), promise: nil)
            self[side].unflushed = true
            self.flush(side)
        }
        self.finishIfDone()
    }

    /// Closes TCP on both sides once each has sent and received a close (or is gone).
    func finishIfDone() {
        guard self.started else { return }
        func done(_ peer: Peer) -> Bool {
            !peer.active || (peer.receivedClose && (peer.sentClose || peer.inputClosed))
        }
        guard done(self.client), done(self.backend) else { return }
        self.closeAfterFlush(.client)
        self.closeAfterFlush(.backend)
        self.armCloseTimer()
    }

    /// Bounds every close handshake: after `close_timeout` both channels are closed whatever state they are in.
    func armCloseTimer() {
        guard self.closeTimer == nil, let loop = (self.client.context ?? self.backend.context)?.eventLoop else { return }
        self.closeTimer = loop.assumeIsolated().scheduleTask(in: self.settings.closeTimeout) {
            self.abort()
        }
    }
}

extension String {
    /// Decodes UTF-8, failing on invalid sequences (close reasons must be valid UTF-8).
    init?(validatingUTF8CString bytes: ArraySlice<UInt8>) {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        self = text
    }
}
