#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Reads CPU time and resident memory of the server under test from `/proc` (Linux only).
///
/// A server may be several processes (nginx's master and workers), so the named processes' descendants are
/// included. The set of processes is taken once, at creation: the proxies compared do not fork per connection.
struct ProcessSampler: Sendable {
    /// The processes sampled: the named ones and their descendants.
    let pids: [Int32]

    init(rootPids: [Int32]) {
        self.pids = Self.withDescendants(rootPids)
    }

    /// One reading of the whole set.
    struct Sample: Sendable {
        /// User plus system CPU seconds, summed.
        var cpuSeconds: Double
        /// Resident set size (VmRSS), summed, in bytes.
        var rssBytes: Int
    }

    func sample() -> Sample {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var cpu = 0.0
        var rss = 0
        for pid in self.pids {
            if let stat = Self.stat(pid), ticks > 0 {
                cpu += Double(stat.utime + stat.stime) / ticks
            }
            rss += Self.rssBytes(pid) ?? 0
        }
        return Sample(cpuSeconds: cpu, rssBytes: rss)
    }

    /// CPU seconds this process itself has used (the load generator's own cost).
    static func selfCPUSeconds() -> Double {
        var usage = rusage()
        #if canImport(Glibc)
        let who = __rusage_who_t(RUSAGE_SELF.rawValue)
        #else
        let who = RUSAGE_SELF
        #endif
        guard getrusage(who, &usage) == 0 else { return 0 }
        let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return user + system
    }

    private struct Stat {
        var ppid: Int32
        var utime: UInt64
        var stime: UInt64
    }

    /// Parses `/proc/PID/stat`; the command name may contain spaces and parentheses, so fields are counted from
    /// the last `)`.
    private static func stat(_ pid: Int32) -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the name: state(0) ppid(1) ... utime(11) stime(12).
        guard fields.count > 12, let ppid = Int32(fields[1]), let utime = UInt64(fields[11]), let stime = UInt64(fields[12])
        else { return nil }
        return Stat(ppid: ppid, utime: utime, stime: stime)
    }

    private static func rssBytes(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let number = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first
            return number.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    private static func withDescendants(_ roots: [Int32]) -> [Int32] {
        var parentOf: [Int32: Int32] = [:]
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") {
            for entry in entries {
                guard let pid = Int32(entry), let stat = Self.stat(pid) else { continue }
                parentOf[pid] = stat.ppid
            }
        }
        var result = Set(roots)
        var grew = true
        while grew {
            grew = false
            for (pid, parent) in parentOf where result.contains(parent) && !result.contains(pid) {
                result.insert(pid)
                grew = true
            }
        }
        return result.sorted()
    }
}
