import ArgumentParser
import Histogram
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
        var connections: Int
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
            try self.report(result)
            if result.connected == 0 { throw ExitCode(2) }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func measure(target: BenchTarget, connector: WebSocketConnector, group: EventLoopGroup) async throws -> Result {
        var payload = ByteBufferAllocator().buffer(capacity: self.messageSize)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<self.messageSize { payload.writeInteger(UInt8.random(in: 0...255, using: &generator)) }
        let message = payload

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
        let channels = opened.opened
        Report.note("echo: \(channels.count)/\(self.connections) connections up to \(target) in \(Report.decimal(opened.seconds, 2)) s")

        let sampler = self.target.sampler()
        let now = NIODeadline.now()
        let measureFrom = now + .nanoseconds(Int64(self.warmup * 1e9))
        let until = measureFrom + .nanoseconds(Int64(self.duration * 1e9))
        for echo in channels {
            echo.channel.pipeline.fireUserInboundEventTriggered(EchoStart(measureFrom: measureFrom, until: until))
        }
        // Sample the watched processes at the window's edges; the sleeps are on the same monotonic clock. With
        // nothing connected there is nothing to wait for.
        let active = !channels.isEmpty
        if active { try await Task.sleep(for: .nanoseconds(Int64(self.warmup * 1e9))) }
        let cpuBefore = sampler?.sample().cpuSeconds
        let clientBefore = ProcessSampler.selfCPUSeconds()
        if active { try await Task.sleep(for: .nanoseconds(Int64(self.duration * 1e9))) }
        let cpuAfter = sampler?.sample().cpuSeconds
        let clientAfter = ProcessSampler.selfCPUSeconds()

        var latency = LatencyHistogram.make()
        var messages = 0
        var errors = opened.failures
        var lost = 0
        var firstError = opened.firstError
        for echo in channels {
            let one = try await echo.result.get()
            latency.add(one.latency)
            messages += one.messages
            errors += one.errors
            lost += one.lost ? 1 : 0
            firstError = firstError ?? one.firstError
        }
        return Result(
            target: target.description, connections: self.connections, connected: channels.count,
            messageBytes: self.messageSize, durationSeconds: self.duration, warmupSeconds: self.warmup,
            messages: messages, messagesPerSecond: Double(messages) / self.duration,
            latencyMicros: LatencySummary(latency), errors: errors, connectFailures: opened.failures,
            connectionsLost: lost, firstError: firstError, watchedPids: sampler?.pids ?? [],
            watchedCPUSeconds: cpuAfter.flatMap { after in cpuBefore.map { after - $0 } },
            clientCPUSeconds: clientAfter - clientBefore
        )
    }

    /// An open echo connection and the result its handler will deliver.
    private struct EchoChannel: Sendable {
        var channel: Channel
        var result: EventLoopFuture<EchoConnectionResult>
    }

    private func report(_ result: Result) throws {
        var rows: [(String, String)] = [
            ("target", result.target),
            ("connections", "\(result.connected)/\(result.connections)"),
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
        try Report.emit(result, title: "gatehouse-bench echo", rows: rows, json: self.target.json)
    }
}
