import Foundation
import GatehouseCluster
import Logging
import NIOCore
import Tracing

/// Owns one relayed WebSocket from the backend's 101 to its end: it carries out what ``RelayStateMachine`` decides
/// on the client and backend channels (through their ``RelayHandler``s), holds the route's admission ticket, is
/// registered on its loop while it lives, and at the end records its metrics and writes the access record.
///
/// Backpressure: when the channel being written to passes its high watermark (`buffer_bytes`), reads on the side
/// feeding it are held back until it drains below the low watermark, so the proxy never holds more than
/// `buffer_bytes` plus one read per direction.
///
/// Only touched on its event loop. The per-read path writes the runs the machine hands back and nothing else: no
/// closure, no list of actions; it settles (close frames, timers, shutdowns) only when the machine asks for it.
final class RelayConnection {
    /// What the access log and admin API know of this connection.
    let record: ConnectionRecord
    /// The route's metrics, fed with what changed.
    let metrics: RouteMetrics
    private(set) var machine: RelayStateMachine
    private let engine: ProxyEngine
    private let loop: LoopRuntime
    /// The route's connection slot: released when the connection ends, in ``finish(_:)`` only.
    private let ticket: AdmissionTicket
    /// The backend's server state: its live count goes up in ``open`` and down in ``finish(_:)``, once each.
    private let backendRuntime: BackendRuntime?
    private var clientContext: ChannelHandlerContext?
    private var backendContext: ChannelHandlerContext?
    /// Armed only while closing; ticks go through the loop's one timer (``LoopRuntime/scheduleTick(_:at:)``).
    private var closeTimer: Scheduled<Void>?
    private var reported = ReportedTraffic()
    /// Traffic not yet added to the route's counters (published when metrics are scraped, and at the end).
    private(set) var trafficDirty = false
    /// Channels the connection is subscribed to (at most ``ChannelName/maxPerConnection``), from the backend's
    /// `Gatehouse-Channels` header at first, then changed through the admin API.
    private(set) var channels: Set<String> = []
    /// The connection's span, only when tracing is on; ended in ``finish(_:)``.
    private var span: (any Span)?

    init(
        record: ConnectionRecord, settings: RelaySettings, metrics: RouteMetrics, ticket: AdmissionTicket,
        engine: ProxyEngine, loop: LoopRuntime, backendRuntime: BackendRuntime? = nil
    ) {
        self.record = record
        self.backendRuntime = backendRuntime
        self.metrics = metrics
        self.machine = RelayStateMachine(settings: settings)
        self.ticket = ticket
        self.engine = engine
        self.loop = loop
    }

    /// Creates the owner of an admitted, upgraded connection and registers it on its loop.
    static func open(
        engine: ProxyEngine, admission: Admission, request: UpgradeRequest, upgrade: BackendUpgrade, listener: String,
        started: NIODeadline, loop: LoopRuntime
    ) -> RelayConnection {
        let route = admission.route
        let record = ConnectionRecord(
            id: admission.connectionID, listener: listener, route: route.name, request: request,
            identity: admission.identity, backendServer: upgrade.server.description, backend: route.backend.name,
            backendAddress: upgrade.server, started: started,
            startedWallClock: Date().timeIntervalSince1970
        )
        let settings = RelaySettings(
            limits: route.config.limits,
            negotiatedExtensions: upgrade.head.headers["sec-websocket-extensions"].flatMap { HTTPToken.list($0) },
            expiresAt: route.config.enforceExpiry ? admission.identity?.expiresAt.map(NIODeadline.fromWallClock) : nil,
            compression: route.config.compression
        )
        let connection = RelayConnection(
            record: record, settings: settings, metrics: route.metrics, ticket: admission.ticket, engine: engine, loop: loop,
            backendRuntime: route.backend.runtime
        )
        route.backend.runtime.connectionOpened(upgrade.server)
        let requested = upgrade.head.headers[ChannelName.header]
        if !requested.isEmpty {
            let (channels, ignored) = ChannelName.parseHeader(requested)
            connection.channels = Set(channels)
            if !ignored.isEmpty {
                engine.logger.warning(
                    "backend asked for channels that were ignored",
                    metadata: ["connection": "\(record.id)", "route": "\(route.name)", "ignored": "\(ignored.joined(separator: "; "))"]
                )
            }
        }
        loop.connections[record.id] = connection
        if let cluster = engine.cluster {
            cluster.opened(
                RegistryRow(
                    id: cluster.clusterID(record.id), node: cluster.node, route: record.route, listener: record.listener,
                    subject: record.subject, clientIP: record.clientIP, transport: record.transport.rawValue,
                    started: Date(timeIntervalSince1970: record.startedWallClock), channels: connection.channels.sorted()
                )
            )
        }
        if GatehouseTracing.enabled {
            let span = InstrumentationSystem.tracer.startSpan(
                "websocket.connection", context: admission.traceContext ?? .topLevel, ofKind: .server
            )
            span.attributes["gatehouse.route"] = route.name
            span.attributes["gatehouse.listener"] = listener
            span.attributes["gatehouse.backend.server"] = upgrade.server.description
            connection.span = span
        }
        route.metrics.handshake(status: 101)
        route.metrics.active.increment()
        route.metrics.handshakeDuration.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        return connection
    }

    private func context(_ side: RelaySide) -> ChannelHandlerContext? {
        side == .client ? self.clientContext : self.backendContext
    }

    // MARK: Events from the handlers

    func attach(_ side: RelaySide, context: ChannelHandlerContext, isStream: Bool) {
        if side == .client { self.clientContext = context } else { self.backendContext = context }
        self.machine.attached(side, isStream: isStream, writable: context.channel.isWritable)
    }

    /// Both HTTP handlers are out of the pipelines: relaying starts.
    func start() {
        self.machine.start(now: .now())
        self.settle()
    }

    func received(_ buffer: ByteBuffer, from side: RelaySide) {
        if side == .client {
            self.record.bytesFromClient &+= buffer.readableBytes
        } else {
            self.record.bytesFromBackend &+= buffer.readableBytes
        }
        var buffer = buffer
        while case .write(let bytes, let target) = self.machine.received(&buffer, from: side) {
            self.context(target)?.write(NIOAny(bytes), promise: nil)
        }
        if self.machine.needsSettling { self.settle() }
    }

    /// The tick the machine asked for is due (called by the loop's tick timer).
    func tickDue() {
        self.machine.tick(now: .now())
        self.settle()
    }

    func readComplete(from side: RelaySide) {
        if let flush = self.machine.readComplete(from: side) { self.flush(flush) }
        if !self.trafficDirty {
            self.trafficDirty = true
            self.loop.trafficPending.append(self)
        }
    }

    func readRequested(by side: RelaySide) {
        if self.machine.readRequested(by: side) { self.context(side)?.read() }
    }

    func writabilityChanged(_ side: RelaySide) {
        guard let context = self.context(side) else { return }
        if let feeder = self.machine.writabilityChanged(side, writable: context.channel.isWritable) {
            self.context(feeder)?.read()
        }
        if self.machine.needsSettling { self.settle() }
    }

    func inputClosed(_ side: RelaySide) {
        self.machine.inputClosed(side)
        self.settle()
    }

    func inactive(_ side: RelaySide) {
        self.machine.inactive(side)
        self.settle()
    }

    func failed(_ side: RelaySide) {
        self.perform(self.machine.errorCaught(on: side))
    }

    // MARK: Commands

    /// Closes toward both sides with `code` and `reason` (drain, administrator).
    func close(code: WebSocketCloseCode, reason: String) {
        self.machine.close(code: code, reason: reason)
        self.settle()
    }

    /// Closes because the backend server leaves (drained, ejected, removed): 1012 to the client so it reconnects
    /// elsewhere, 1001 to the server.
    func closeForDrain() {
        if self.machine.ending == nil { self.record.endedByDrain = true }
        self.machine.close(
            client: (.other(CloseCode.serviceRestart), "server leaving; reconnect"), backend: (.goingAway, "proxy draining this server")
        )
        self.settle()
    }

    /// Closes both channels at once, dropping anything queued (process shutdown, the end of a drain).
    func abort() {
        self.perform(self.machine.abort())
    }

    /// Undoes a splice that failed half way: both channels are closed and the connection ends here.
    func abandon(client: Channel, backend: Channel, error: Error) {
        self.engine.logger.error("splice failed", metadata: ["error": "\(error)"])
        _ = self.machine.abandon()
        client.close(promise: nil)
        backend.close(promise: nil)
        self.settle()
    }

    /// Sends a message of the proxy's own to the client, between the backend's messages (see ``RelayStateMachine``).
    /// Call on the connection's loop.
    func push(_ message: PushMessage) -> PushOutcome {
        let outcome = self.machine.push(message)
        if self.machine.needsSettling { self.settle() }
        return outcome
    }

    /// Subscribes the connection to `channel` (a valid ``ChannelName``). Call on the connection's loop.
    func subscribe(_ channel: String) -> SubscriptionChange {
        if self.channels.contains(channel) { return .unchanged }
        guard self.channels.count < ChannelName.maxPerConnection else { return .tooManyChannels }
        self.channels.insert(channel)
        self.engine.cluster?.channelsChanged(connectionID: self.record.id, channels: self.channels.sorted())
        return .changed
    }

    /// Unsubscribes the connection from `channel`. Call on the connection's loop.
    func unsubscribe(_ channel: String) -> SubscriptionChange {
        guard self.channels.remove(channel) != nil else { return .unchanged }
        self.engine.cluster?.channelsChanged(connectionID: self.record.id, channels: self.channels.sorted())
        return .changed
    }

    // MARK: Carrying out actions

    private func settle() {
        while let action = self.machine.nextAction() { self.perform(action) }
    }

    private func perform(_ action: RelayStateMachine.Action) {
        switch action {
        case .write(let bytes, let side):
            self.context(side)?.write(NIOAny(bytes), promise: nil)
        case .flush(let flush):
            self.flush(flush)
        case .read(let side):
            self.context(side)?.read()
        case .shutOutput(let side):
            self.shutOutput(side)
        case .close(let side):
            self.context(side)?.close(promise: nil)
        case .closeBoth:
            self.clientContext?.close(promise: nil)
            self.backendContext?.close(promise: nil)
        case .armCloseTimer(let delay):
            guard self.closeTimer == nil else { return }
            self.closeTimer = self.loop.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                self.perform(self.machine.closeTimedOut())
            }
        case .scheduleTick(let deadline):
            self.loop.scheduleTick(self, at: deadline)
        case .finished(let ending):
            self.finish(ending)
        }
    }

    private func flush(_ flush: RelayStateMachine.Flush) {
        guard let context = self.context(flush.side) else { return }
        context.flush()
        guard flush.sampleBacklog, let queued = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) else { return }
        if queued > self.record.peakBufferedBytes { self.record.peakBufferedBytes = queued }
    }

    /// Flushes, then shuts the output. A socket is closed once that is done; an HTTP/2 stream only gets END_STREAM
    /// and closes once the client ends its side too (resetting it would be abrupt): the close timer bounds the wait.
    private func shutOutput(_ side: RelaySide) {
        guard let context = self.context(side) else { return }
        if self.machine[side].isStream {
            context.close(mode: .output, promise: nil)
            return
        }
        context.flush()
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        context.close(mode: .output, promise: promise)
    }

    /// The one place a connection ends: timers, registration, ticket, metrics, access record.
    private func finish(_ ending: RelayEnding) {
        self.closeTimer?.cancel()
        self.loop.cancelTick(self)
        self.loop.connections.removeValue(forKey: self.record.id)
        self.ticket.release()
        if let server = self.record.backendAddress { self.backendRuntime?.connectionClosed(server) }
        self.engine.cluster?.released(connectionID: self.record.id)
        self.reportTraffic()
        self.metrics.active.decrement()
        self.metrics.connectionDuration.recordNanoseconds((NIODeadline.now() - self.record.started).nanoseconds)
        self.engine.metrics.closed(code: ending.code?.code, by: ending.by.rawValue)
        self.engine.accessLog.connectionEnded(self.record, extra: self.accessMetadata(ending))
        if let span = self.span {
            self.span = nil
            self.endSpan(span, ending)
        }
    }

    /// What the connection span says at the end: how it closed, and traffic each way.
    private func endSpan(_ span: any Span, _ ending: RelayEnding) {
        span.attributes["websocket.close_code"] = ending.code.map { Int($0.code) } ?? 0
        span.attributes["websocket.closed_by"] = ending.by.rawValue
        span.attributes["gatehouse.bytes_from_client"] = self.record.bytesFromClient
        span.attributes["gatehouse.bytes_from_backend"] = self.record.bytesFromBackend
        span.attributes["gatehouse.messages_from_client"] = self.machine.fromClient.messages
        span.attributes["gatehouse.messages_from_backend"] = self.machine.messagesToClient
        span.attributes["gatehouse.duration_ms"] = Int((NIODeadline.now() - self.record.started).nanoseconds / 1_000_000)
        span.end()
    }

    // MARK: Metrics and records

    /// Adds what changed since the last report to the route's counters.
    func reportTraffic() {
        self.trafficDirty = false
        let record = self.record
        if record.bytesFromClient != self.reported.bytesFromClient {
            self.metrics.bytesFromClient.increment(by: record.bytesFromClient - self.reported.bytesFromClient)
            self.reported.bytesFromClient = record.bytesFromClient
        }
        if record.bytesFromBackend != self.reported.bytesFromBackend {
            self.metrics.bytesFromBackend.increment(by: record.bytesFromBackend - self.reported.bytesFromBackend)
            self.reported.bytesFromBackend = record.bytesFromBackend
        }
        let messagesFromClient = self.machine.fromClient.messages
        if messagesFromClient != self.reported.messagesFromClient {
            self.metrics.messagesFromClient.increment(by: messagesFromClient - self.reported.messagesFromClient)
            self.reported.messagesFromClient = messagesFromClient
        }
        // Pushed messages count as client-bound messages (their bytes are not the backend's).
        let messagesFromBackend = self.machine.messagesToClient
        if messagesFromBackend != self.reported.messagesFromBackend {
            self.metrics.messagesFromBackend.increment(by: messagesFromBackend - self.reported.messagesFromBackend)
            self.reported.messagesFromBackend = messagesFromBackend
        }
    }

    /// What the access record adds for the frame layer: how it closed, who closed it, frames and messages each way.
    func accessMetadata(_ ending: RelayEnding) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "frames_in": "\(self.machine.fromClient.frames)",
            "frames_out": "\(self.machine.fromBackend.frames)",
            "messages_in": "\(self.machine.fromClient.messages)",
            "messages_out": "\(self.machine.messagesToClient)",
            "close_code": "\(ending.code.map { String($0.code) } ?? "none")",
            "closed_by": "\(ending.by.rawValue)",
        ]
        if !ending.reason.isEmpty { metadata["close_reason"] = "\(ending.reason)" }
        if self.machine.pushedMessages > 0 { metadata["messages_pushed"] = "\(self.machine.pushedMessages)" }
        return metadata
    }
}

/// Traffic already added to the route's counters.
struct ReportedTraffic {
    var bytesFromClient = 0
    var bytesFromBackend = 0
    var messagesFromClient = 0
    var messagesFromBackend = 0
}
