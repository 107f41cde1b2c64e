import Histogram
import NIOCore

/// An open echo connection (or WebSocket stream) and the result its handler will deliver.
struct EchoChannel: Sendable {
    var channel: Channel
    var result: EventLoopFuture<EchoConnectionResult>
}

/// What an echo run's measured window produced, summed over its connections.
struct EchoTotals {
    var latency = LatencyHistogram.make()
    var messages = 0
    var errors = 0
    var lost = 0
    var firstError: String?
    /// CPU seconds the watched processes used during the window.
    var watchedCPUSeconds: Double?
    /// The load generator's own CPU seconds during the window.
    var clientCPUSeconds = 0.0
}

enum EchoWindow {
    /// Starts every channel's closed loop (warm up for `warmup` seconds, then measure for `duration`), samples the
    /// watched processes at the window's edges, and waits for every loop's result (each is bounded by
    /// ``EchoLoopHandler/grace`` after the window).
    static func run(_ channels: [EchoChannel], warmup: Double, duration: Double, sampler: ProcessSampler?) async throws -> EchoTotals {
        let now = NIODeadline.now()
        let measureFrom = now + .nanoseconds(Int64(warmup * 1e9))
        let until = measureFrom + .nanoseconds(Int64(duration * 1e9))
        for echo in channels {
            echo.channel.pipeline.fireUserInboundEventTriggered(EchoStart(measureFrom: measureFrom, until: until))
        }
        // The sleeps are on the same monotonic clock as the handlers' deadlines. With nothing connected there is
        // nothing to wait for.
        let active = !channels.isEmpty
        if active { try await Task.sleep(for: .nanoseconds(Int64(warmup * 1e9))) }
        let cpuBefore = sampler?.sample().cpuSeconds
        let clientBefore = ProcessSampler.selfCPUSeconds()
        if active { try await Task.sleep(for: .nanoseconds(Int64(duration * 1e9))) }
        let cpuAfter = sampler?.sample().cpuSeconds
        let clientAfter = ProcessSampler.selfCPUSeconds()

        var totals = EchoTotals()
        for echo in channels {
            let one = try await echo.result.get()
            totals.latency.add(one.latency)
            totals.messages += one.messages
            totals.errors += one.errors
            totals.lost += one.lost ? 1 : 0
            totals.firstError = totals.firstError ?? one.firstError
        }
        totals.watchedCPUSeconds = cpuAfter.flatMap { after in cpuBefore.map { after - $0 } }
        totals.clientCPUSeconds = clientAfter - clientBefore
        return totals
    }

    /// A random payload of `size` bytes (its first 8 bytes are overwritten with each message's sequence number).
    static func payload(size: Int) -> ByteBuffer {
        var payload = ByteBufferAllocator().buffer(capacity: size)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<size { payload.writeInteger(UInt8.random(in: 0...255, using: &generator)) }
        return payload
    }
}
