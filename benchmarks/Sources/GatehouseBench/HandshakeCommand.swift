import ArgumentParser
import NIOCore
import NIOPosix

/// `handshake`: P connectors, each looping new TCP (+TLS) + upgrade + close; reports handshakes per second.
struct HandshakeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handshake",
        abstract: "Handshake rate: parallel loops of connect (+TLS), upgrade, close."
    )

    @OptionGroup var target: TargetOptions

    @Option(help: "Parallel connectors.")
    var parallel: Int = 20

    @Option(help: "Measured seconds.")
    var duration: Double = 10

    @Option(help: "Warm-up seconds before measuring (not counted).")
    var warmup: Double = 1

    func validate() throws {
        guard (1...1000).contains(self.parallel) else { throw ValidationError("--parallel must be 1...1000") }
        guard self.duration > 0, self.duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
        guard self.warmup >= 0, self.warmup <= 600 else { throw ValidationError("--warmup must be in [0, 600]") }
    }

    /// The JSON result.
    struct Result: Encodable {
        var mode = "handshake"
        var target: String
        var parallel: Int
        var durationSeconds: Double
        var warmupSeconds: Double
        /// Complete cycles (connect, upgrade, close answered) started and finished inside the window.
        var handshakes: Int
        var handshakesPerSecond: Double
        /// Connect start to 101 checked, TLS included.
        var latencyMicros: LatencySummary
        var errors: Int
        var firstError: String?
        var watchedPids: [Int32]
        var watchedCPUSeconds: Double?
        var clientCPUSeconds: Double
    }

    func run() async throws {
        let target = try self.target.target()
        let tls = try self.target.tlsContext(for: target)
        FileLimit.raise(to: self.parallel * 4 + 256)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.target.threads)
        do {
            let connector = try WebSocketConnector(target: target, tlsContext: tls, maxFrameSize: 1 << 16)
            let result = try await self.measure(target: target, connector: connector, group: group)
            try await group.shutdownGracefully()
            try self.report(result)
            if result.handshakes == 0 { throw ExitCode(2) }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func measure(target: BenchTarget, connector: WebSocketConnector, group: EventLoopGroup) async throws -> Result {
        let sampler = self.target.sampler()
        let measureFrom = NIODeadline.now() + .nanoseconds(Int64(self.warmup * 1e9))
        let until = measureFrom + .nanoseconds(Int64(self.duration * 1e9))
        let warmup = self.warmup
        let duration = self.duration

        async let samples: (Double?, Double, Double?, Double) = {
            try? await Task.sleep(for: .nanoseconds(Int64(warmup * 1e9)))
            let cpuBefore = sampler?.sample().cpuSeconds
            let clientBefore = ProcessSampler.selfCPUSeconds()
            try? await Task.sleep(for: .nanoseconds(Int64(duration * 1e9)))
            return (cpuBefore, clientBefore, sampler?.sample().cpuSeconds, ProcessSampler.selfCPUSeconds())
        }()

        let loops = (0..<self.parallel).map { _ in
            HandshakeLoop.run(connector: connector, eventLoop: group.next(), measureFrom: measureFrom, until: until)
        }
        var total = HandshakeLoop.Result()
        for loop in loops {
            let one = try await loop.get()
            total.latency.add(one.latency)
            total.handshakes += one.handshakes
            total.errors += one.errors
            total.firstError = total.firstError ?? one.firstError
        }
        let (cpuBefore, clientBefore, cpuAfter, clientAfter) = await samples
        return Result(
            target: target.description, parallel: self.parallel, durationSeconds: self.duration,
            warmupSeconds: self.warmup, handshakes: total.handshakes,
            handshakesPerSecond: Double(total.handshakes) / self.duration, latencyMicros: LatencySummary(total.latency),
            errors: total.errors, firstError: total.firstError, watchedPids: sampler?.pids ?? [],
            watchedCPUSeconds: cpuAfter.flatMap { after in cpuBefore.map { after - $0 } },
            clientCPUSeconds: clientAfter - clientBefore
        )
    }

    private func report(_ result: Result) throws {
        var rows: [(String, String)] = [
            ("target", result.target),
            ("parallel", "\(result.parallel)"),
            ("duration (s)", Report.decimal(result.durationSeconds)),
            ("handshakes", "\(result.handshakes)"),
            ("handshakes/s", Report.decimal(result.handshakesPerSecond)),
        ]
        rows += result.latencyMicros.rows
        rows.append(("errors", "\(result.errors)"))
        if let cpu = result.watchedCPUSeconds {
            rows.append(("server CPU s", Report.decimal(cpu, 2)))
        }
        rows.append(("client CPU s", Report.decimal(result.clientCPUSeconds, 2)))
        if let error = result.firstError { rows.append(("first error", error)) }
        try Report.emit(result, title: "gatehouse-bench handshake", rows: rows, json: self.target.json)
    }
}
