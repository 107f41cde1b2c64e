import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// `idle`: opens N upgraded connections, holds them, and reports the watched server's memory per connection.
struct IdleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idle",
        abstract: "Open N idle WebSocket connections and hold them (for RSS per connection)."
    )

    @OptionGroup var target: TargetOptions

    @Option(help: "Connections to open and hold.")
    var connections: Int = 5000

    @Option(help: "Seconds to hold once all are up (SIGTERM or SIGINT ends the hold early).")
    var hold: Double = 10

    @Option(help: "Handshakes in flight at once while opening.")
    var concurrency: Int = 100

    @Option(help: "Connections started per second at most while opening.")
    var rate: Int = 2000

    @Option(help: "Seconds to wait after the last connection is up before sampling the watched RSS.")
    var settle: Double = 1

    @Option(name: .customLong("ready-file"), help: "File written (with the count) once all connections are up.")
    var readyFile: String?

    func validate() throws {
        guard (1...100_000).contains(self.connections) else { throw ValidationError("--connections must be 1...100000") }
        guard self.hold >= 0, self.hold <= 86_400 else { throw ValidationError("--hold must be in [0, 86400]") }
        guard (1...10_000).contains(self.concurrency) else { throw ValidationError("--concurrency must be 1...10000") }
        guard (1...100_000).contains(self.rate) else { throw ValidationError("--rate must be 1...100000") }
        guard self.settle >= 0, self.settle <= 600 else { throw ValidationError("--settle must be in [0, 600]") }
    }

    /// The JSON result.
    struct Result: Encodable {
        var mode = "idle"
        var target: String
        var connections: Int
        var opened: Int
        var failed: Int
        var openSeconds: Double
        var dropped: Int
        var heldSeconds: Double
        var fileLimit: Int
        var firstError: String?
        var watchedPids: [Int32]
        var rssBeforeBytes: Int?
        var rssHoldingBytes: Int?
        /// (holding − before) / opened.
        var rssPerConnectionBytes: Double?
    }

    func run() async throws {
        let target = try self.target.target()
        let tls = try self.target.tlsContext(for: target)
        let limit = FileLimit.raise(to: self.connections + 256)
        guard limit >= self.connections + 64 else {
            throw ValidationError("open-file limit is \(limit); \(self.connections) connections need about \(self.connections + 64)")
        }
        let stop = StopSignal()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.target.threads)
        do {
            let connector = try WebSocketConnector(target: target, tlsContext: tls, maxFrameSize: 1 << 16)
            let result = try await self.holdConnections(target: target, connector: connector, group: group, stop: stop, fileLimit: limit)
            try await group.shutdownGracefully()
            try self.report(result)
            if result.opened == 0 { throw ExitCode(2) }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func holdConnections(
        target: BenchTarget, connector: WebSocketConnector, group: EventLoopGroup, stop: StopSignal, fileLimit: Int
    ) async throws -> Result {
        let sampler = self.target.sampler()
        let before = sampler?.sample().rssBytes
        let counters = IdleHandler.Counters()
        let clock = ContinuousClock()
        let pacer = ConnectPacer(concurrency: self.concurrency, perSecond: self.rate)
        let opened = await pacer.openAll(count: self.connections, deadline: clock.now + .seconds(300)) { _ in
            try await connector.connect(on: group.next()) { sync in
                try sync.addHandler(IdleHandler(counters: counters))
            }.get()
        }
        let channels = opened.opened
        Report.note("ready: \(channels.count)/\(self.connections) connections up to \(target) in \(Report.decimal(opened.seconds, 2)) s")
        if let readyFile = self.readyFile {
            try "\(channels.count)\n".write(toFile: readyFile, atomically: true, encoding: .utf8)
        }

        let heldFrom = clock.now
        await stop.wait(until: heldFrom + .nanoseconds(Int64(self.settle * 1e9)))
        let holding = sampler?.sample().rssBytes
        await stop.wait(until: heldFrom + .nanoseconds(Int64(Swift.max(self.hold, self.settle) * 1e9)))
        let heldSeconds = (clock.now - heldFrom).seconds
        let dropped = counters.dropped

        // A plain TCP close: the proxies pass the FIN on, and the hold, not the teardown, is what is measured.
        counters.release()
        for channel in channels { channel.close(promise: nil) }
        for channel in channels { try? await channel.closeFuture.get() }

        var perConnection: Double?
        if let before, let holding, !channels.isEmpty {
            perConnection = Double(holding - before) / Double(channels.count)
        }
        return Result(
            target: target.description, connections: self.connections, opened: channels.count,
            failed: opened.failures, openSeconds: opened.seconds, dropped: dropped, heldSeconds: heldSeconds,
            fileLimit: fileLimit, firstError: opened.firstError, watchedPids: sampler?.pids ?? [],
            rssBeforeBytes: before, rssHoldingBytes: holding, rssPerConnectionBytes: perConnection
        )
    }

    private func report(_ result: Result) throws {
        var rows: [(String, String)] = [
            ("target", result.target),
            ("opened", "\(result.opened)/\(result.connections) in \(Report.decimal(result.openSeconds, 2)) s"),
            ("failed", "\(result.failed)"),
            ("dropped while held", "\(result.dropped)"),
            ("held (s)", Report.decimal(result.heldSeconds)),
        ]
        if let before = result.rssBeforeBytes, let holding = result.rssHoldingBytes {
            rows.append(("server RSS before (KiB)", "\(before / 1024)"))
            rows.append(("server RSS holding (KiB)", "\(holding / 1024)"))
        }
        if let perConnection = result.rssPerConnectionBytes {
            rows.append(("server RSS per connection (KiB)", Report.decimal(perConnection / 1024, 2)))
        }
        if let error = result.firstError { rows.append(("first error", error)) }
        try Report.emit(result, title: "gatehouse-bench idle", rows: rows, json: self.target.json)
    }
}
