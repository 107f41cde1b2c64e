import NIOCore

extension RelaySession {
    /// One timer per connection drives keepalive pings, idle detection and token expiry.
    func startTimers() {
        let now = NIODeadline.now()
        self.keepalive.clientQuietSince = now
        self.keepalive.dataQuietSince = now
        self.scheduleTick(now: now)
    }

    private func scheduleTick(now: NIODeadline) {
        var next: NIODeadline?
        func consider(_ deadline: NIODeadline) {
            next = next.map { min($0, deadline) } ?? deadline
        }
        if let interval = self.settings.keepaliveInterval {
            consider(now + .nanoseconds(max(interval.nanoseconds / 2, 10_000_000)))
        }
        if let idle = self.settings.idleTimeout {
            consider(now + .nanoseconds(max(idle.nanoseconds / 4, 10_000_000)))
        }
        if let expiry = self.settings.expiresAt {
            consider(max(expiry, now + .milliseconds(1)))
        }
        guard let deadline = next, let loop = self.client.context?.eventLoop else { return }
        self.tickTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.tick()
        }
    }

    private func tick() {
        guard !self.client.sentClose, !self.client.receivedClose, self.client.pendingClose == nil else { return }
        let now = NIODeadline.now()
        if let expiry = self.settings.expiresAt, now >= expiry {
            self.close(code: CloseCode.policyViolation, reason: "token expired")
            return
        }
        if let interval = self.settings.keepaliveInterval {
            if self.record.bytesFromClient != self.keepalive.clientBytes {
                self.keepalive.clientBytes = self.record.bytesFromClient
                self.keepalive.clientQuietSince = now
            }
            if self.keepalive.outstanding != nil {
                if now - self.keepalive.sentAt >= interval * 2 {
                    self.close(code: CloseCode.goingAway, reason: "keepalive timeout")
                    return
                }
            } else if now - self.keepalive.clientQuietSince >= interval {
                self.sendPing(now: now)
            }
        }
        if let idle = self.settings.idleTimeout {
            let frames = self.fromClient.dataFrames &+ self.fromBackend.dataFrames
            if frames != self.keepalive.dataFrames {
                self.keepalive.dataFrames = frames
                self.keepalive.dataQuietSince = now
            } else if now - self.keepalive.dataQuietSince >= idle {
                self.close(code: CloseCode.goingAway, reason: "idle timeout")
                return
            }
        }
        self.scheduleTick(now: now)
    }

    /// Pings the client, unless a frame toward it is half-written (then the next tick tries again).
    private func sendPing(now: NIODeadline) {
        guard self.fromBackend.forwardedWholeFrames, let context = self.client.context, !self.client.outputClosed else { return }
        let payload = self.keepalive.nextPing(now: now)
        self.fromClient.holdPongs = true
        context.write(NIOAny(ProxyFrame.ping(payload: payload, masked: false, allocator: context.channel.allocator)), promise: nil)
        self.client.unflushed = true
        self.flush(.client)
    }
}
