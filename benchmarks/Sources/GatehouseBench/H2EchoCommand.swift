import ArgumentParser
import NIOCore
import NIOPosix

/// `h2echo`: WebSockets over HTTP/2 (RFC 8441). Opens a few TLS connections that negotiate `h2`, opens many
/// WebSocket streams on each with extended CONNECT, and runs the same closed echo loop as `echo` on every stream.
struct H2EchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "h2echo",
        abstract: "Closed-loop echo on WebSockets multiplexed as streams of HTTP/2 connections (RFC 8441)."
    )

    @OptionGroup var target: TargetOptions

    @Option(help: "HTTP/2 connections.")
    var connections: Int = 1

    @Option(help: "WebSocket streams per HTTP/2 connection.")
    var streams: Int = 50

    @Option(name: .customLong("size"), help: "Message payload size in bytes.")
    var messageSize: Int = 64

    @Option(help: "Measured seconds.")
    var duration: Double = 10

    @Option(help: "Warm-up seconds before measuring (not counted).")
    var warmup: Double = 2

    func validate() throws {
        guard (1...100).contains(self.connections) else { throw ValidationError("--connections must be 1...100") }
        guard (1...1000).contains(self.streams) else { throw ValidationError("--streams must be 1...1000") }
        guard (1...(16 << 20)).contains(self.messageSize) else { throw ValidationError("--size must be 1...16777216") }
        guard self.duration > 0, self.duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
        guard self.warmup >= 0, self.warmup <= 600 else { throw ValidationError("--warmup must be in [0, 600]") }
    }

    func run() async throws {
        let target = try self.target.target()
        guard target.tls, let tls = try self.target.tlsContext(for: target, alpn: ["h2"]) else {
            throw ValidationError("h2echo needs a wss:// URL: HTTP/2 is negotiated with ALPN over TLS")
        }
        FileLimit.raise(to: self.connections + 256)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.target.threads)
        do {
            let connector = try H2Connector(target: target, tlsContext: tls, maxFrameSize: Swift.max(self.messageSize, 1 << 16))
            let result = try await self.measure(target: target, connector: connector, group: group)
            try await group.shutdownGracefully()
            try EchoCommand.report(result, json: self.target.json)
            if result.connected == 0 { throw ExitCode(2) }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func measure(target: BenchTarget, connector: H2Connector, group: EventLoopGroup) async throws -> EchoCommand.Result {
        let message = EchoWindow.payload(size: self.messageSize)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        let connections = await ConnectPacer(concurrency: 8, perSecond: 100).openAll(count: self.connections, deadline: deadline) { _ in
            try await connector.connect(on: group.next())
        }
        let up = connections.opened
        let total = self.connections * self.streams
        // Streams of one connection live on its event loop; they are opened round-robin over the connections.
        let streams = await ConnectPacer(concurrency: 64, perSecond: 2000).openAll(
            count: up.isEmpty ? 0 : total, deadline: deadline
        ) { index in
            let connection = up[index % up.count]
            let done = connection.channel.eventLoop.makePromise(of: EchoConnectionResult.self)
            let stream = try await connection.openWebSocket { sync in
                try sync.addHandler(EchoLoopHandler(payload: message, promise: done))
            }.get()
            return EchoChannel(channel: stream, result: done.futureResult)
        }
        Report.note(
            "h2echo: \(up.count)/\(self.connections) HTTP/2 connections, \(streams.opened.count)/\(total) WebSocket streams "
                + "up to \(target) in \(Report.decimal(connections.seconds + streams.seconds, 2)) s"
        )

        let sampler = self.target.sampler()
        let totals = try await EchoWindow.run(streams.opened, warmup: self.warmup, duration: self.duration, sampler: sampler)
        for connection in up { try? await connection.channel.close() }
        // Streams never tried because their connection failed count as failures too.
        let failures = connections.failures * self.streams + streams.failures
        return EchoCommand.Result(
            mode: "h2echo", target: target.description, transport: "h2", connections: self.connections,
            streams: total, connected: streams.opened.count,
            messageBytes: self.messageSize, durationSeconds: self.duration, warmupSeconds: self.warmup,
            messages: totals.messages, messagesPerSecond: Double(totals.messages) / self.duration,
            latencyMicros: LatencySummary(totals.latency), errors: totals.errors + failures,
            connectFailures: failures, connectionsLost: totals.lost,
            firstError: connections.firstError ?? streams.firstError ?? totals.firstError,
            watchedPids: sampler?.pids ?? [], watchedCPUSeconds: totals.watchedCPUSeconds,
            clientCPUSeconds: totals.clientCPUSeconds
        )
    }
}
