#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raises this process's open-file limit, since every connection is a descriptor and the default soft limit
/// (often 1024) is far below what the idle scenario holds.
enum FileLimit {
    /// Raises the soft limit toward `wanted` (up to the hard limit, or past it when privileged); returns the limit
    /// now in force.
    @discardableResult
    static func raise(to wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Self.resource, &limit) == 0 else { return 0 }
        let target = rlim_t(wanted)
        if limit.rlim_cur >= target { return Int(clamping: limit.rlim_cur) }
        // Root may lift the hard limit as well; try that first, then settle for the hard limit.
        var raised = rlimit(rlim_cur: target, rlim_max: Swift.max(limit.rlim_max, target))
        if setrlimit(Self.resource, &raised) == 0 { return wanted }
        raised = rlimit(rlim_cur: Swift.min(target, limit.rlim_max), rlim_max: limit.rlim_max)
        if setrlimit(Self.resource, &raised) == 0 { return Int(clamping: raised.rlim_cur) }
        return Int(clamping: limit.rlim_cur)
    }

    #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}
