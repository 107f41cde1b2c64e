import ArgumentParser
import NIOCore
import NIOPosix

/// `echo`: N connections each running a closed echo loop; reports throughput and round-trip latency.
struct EchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Closed-loop echo: each connection sends a message, waits for its echo, repeats."
    )

    @OptionGroup var target: TargetOptions

    @Option(help: "Concurrent connections.")
    var connections: Int = 50

    @Option(name: .customLong("size"), help: "Message payload size in bytes.")
    var messageSize: Int = 64

    @Option(help: "Measured seconds.")
    var duration: Double = 10

    @Option(help: "Warm-up seconds before measuring (not counted).")
    var warmup: Double = 2

    func validate() throws {
        guard (1...20_000).contains(self.connections) else { throw ValidationError("--connections must be 1...20000") }
        guard (1...(16 << 20)).contains(self.messageSize) else { throw ValidationError("--size must be 1...16777216") }
        guard self.duration > 0, self.duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
        guard self.warmup >= 0, self.warmup <= 600 else { throw ValidationError("--warmup must be in [0, 600]") }
    }

    /// The JSON result.
    struct Result: Encodable {
        var mode = "echo"
        var target: String
        /// How each WebSocket was opened: "http/1.1" (an Upgrade answered by a checked `HTTP/1.x 101`, no ALPN
        /// offered) or "h2" (RFC 8441 extended CONNECT on a stream of a connection that negotiated ALPN h2).
        var transport: String
        /// TCP connections asked for (HTTP/2 connections in `h2echo`).
        var connections: Int
        /// WebSockets asked for: one per connection, or connections × streams in `h2echo`.
        var streams: Int
        /// WebSockets that were up when the window started.
        var connected: Int
        var messageBytes: Int
        var durationSeconds: Double
        var warmupSeconds: Double
        var messages: Int
        var messagesPerSecond: Double
        var latencyMicros: LatencySummary
        var errors: Int
        var connectFailures: Int
        var connectionsLost: Int
        var firstError: String?
        var watchedPids: [Int32]
        /// CPU seconds the watched processes used during the measured window.
        var watchedCPUSeconds: Double?
        /// The load generator's own CPU seconds during the window.
        var clientCPUSeconds: Double
    }

    func run() async throws {
        let target = try self.target.target()
        let tls = try self.target.tlsContext(for: target)
        FileLimit.raise(to: self.connections + 256)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.target.threads)
        do {
            let result = try await self.measure(target: target, connector: try WebSocketConnector(
                target: target, tlsContext: tls, maxFrameSize: Swift.max(self.messageSize, 1 << 16)
            ), group: group)
            try await group.shutdownGracefully()
            try Self.report(result, json: self.target.json)
            if result.connected == 0 { throw ExitCode(2) }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func measure(target: BenchTarget, connector: WebSocketConnector, group: EventLoopGroup) async throws -> Result {
        let message = EchoWindow.payload(size: self.messageSize)
        let clock = ContinuousClock()
        let pacer = ConnectPacer(concurrency: 64, perSecond: 2000)
        let opened = await pacer.openAll(count: self.connections, deadline: clock.now + .seconds(60)) { _ in
            let loop = group.next()
            let done = loop.makePromise(of: EchoConnectionResult.self)
            let channel = try await connector.connect(on: loop) { sync in
                try sync.addHandler(EchoLoopHandler(payload: message, promise: done))
            }.get()
            return EchoChannel(channel: channel, result: done.futureResult)
        }
        Report.note("echo: \(opened.opened.count)/\(self.connections) connections up to \(target) in \(Report.decimal(opened.seconds, 2)) s")

        let sampler = self.target.sampler()
        let totals = try await EchoWindow.run(opened.opened, warmup: self.warmup, duration: self.duration, sampler: sampler)
        return Result(
            target: target.description, transport: "http/1.1", connections: self.connections,
            streams: self.connections, connected: opened.opened.count,
            messageBytes: self.messageSize, durationSeconds: self.duration, warmupSeconds: self.warmup,
            messages: totals.messages, messagesPerSecond: Double(totals.messages) / self.duration,
            latencyMicros: LatencySummary(totals.latency), errors: totals.errors + opened.failures,
            connectFailures: opened.failures, connectionsLost: totals.lost, firstError: opened.firstError ?? totals.firstError,
            watchedPids: sampler?.pids ?? [], watchedCPUSeconds: totals.watchedCPUSeconds,
            clientCPUSeconds: totals.clientCPUSeconds
        )
    }

    static func report(_ result: Result, json: Bool) throws {
        var rows: [(String, String)] = [
            ("target", result.target),
            ("transport", result.transport),
            ("connections", "\(result.connections)"),
            ("websockets up", "\(result.connected)/\(result.streams)"),
            ("message bytes", "\(result.messageBytes)"),
            ("duration (s)", Report.decimal(result.durationSeconds)),
            ("messages", "\(result.messages)"),
            ("messages/s", Report.decimal(result.messagesPerSecond)),
        ]
        rows += result.latencyMicros.rows
        rows.append(("errors", "\(result.errors)"))
        if let cpu = result.watchedCPUSeconds {
            rows.append(("server CPU s", Report.decimal(cpu, 2)))
            if result.messages > 0 {
                rows.append(("server CPU s / 1M msgs", Report.decimal(cpu / Double(result.messages) * 1e6, 2)))
            }
        }
        rows.append(("client CPU s", Report.decimal(result.clientCPUSeconds, 2)))
        if let error = result.firstError { rows.append(("first error", error)) }
        try Report.emit(result, title: "gatehouse-bench \(result.mode)", rows: rows, json: json)
    }
}
