import Histogram

/// Latency recording in microseconds on an HDR histogram (3 significant digits, up to 60 s).
enum LatencyHistogram {
    /// Values above this are clamped: a 60-second round trip is already a failure worth seeing as "max".
    static let highestMicros: UInt64 = 60_000_000

    static func make() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: Self.highestMicros, numberOfSignificantValueDigits: .three)
    }

    static func record(_ histogram: inout Histogram<UInt64>, nanoseconds: UInt64) {
        // Round to the nearest microsecond; anything that took time at all counts as at least 1 µs.
        let micros = Swift.max(1, Swift.min((nanoseconds + 500) / 1000, Self.highestMicros))
        histogram.record(micros)
    }
}

/// Percentiles of one histogram, in microseconds, as reported in tables and JSON.
struct LatencySummary: Codable, Sendable {
    var count: UInt64
    var mean: Double
    var p50: UInt64
    var p90: UInt64
    var p99: UInt64
    var p999: UInt64
    var max: UInt64

    init(_ histogram: Histogram<UInt64>) {
        self.count = histogram.totalCount
        self.mean = histogram.totalCount == 0 ? 0 : (histogram.mean * 10).rounded() / 10
        self.p50 = histogram.valueAtPercentile(50)
        self.p90 = histogram.valueAtPercentile(90)
        self.p99 = histogram.valueAtPercentile(99)
        self.p999 = histogram.valueAtPercentile(99.9)
        self.max = histogram.max
    }

    /// Rows for the human-readable table.
    var rows: [(String, String)] {
        [
            ("latency p50 (µs)", "\(self.p50)"),
            ("latency p90 (µs)", "\(self.p90)"),
            ("latency p99 (µs)", "\(self.p99)"),
            ("latency p99.9 (µs)", "\(self.p999)"),
            ("latency max (µs)", "\(self.max)"),
            ("latency mean (µs)", "\(self.mean)"),
        ]
    }
}
