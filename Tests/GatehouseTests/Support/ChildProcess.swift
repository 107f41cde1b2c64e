import Foundation
import NIOCore
import NIOPosix

/// A long-running child process (the `gatehouse` binary, a Python peer) whose output lines and exit the test awaits.
/// Standard output and standard error go to one `LineCollector`, read on a thread of its own: a blocking read on a
/// GCD worker takes one of the few threads libdispatch runs non-overcommit work on (Swift concurrency's too, on
/// Linux), and a few children stalled every test for about a second until more threads were started.
struct ChildProcess {
    let process: Process
    let output: LineCollector
    private let exited: EventLoopPromise<Int32>

    /// Starts `executable ARGUMENTS`; with `mergeStandardError` false, standard error stays the test's own.
    /// `environment` entries are added to the test's own environment.
    static func start(
        _ executable: String, _ arguments: [String], mergeStandardError: Bool = true, environment: [String: String] = [:]
    ) throws -> ChildProcess {
        let process = Process()
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        if mergeStandardError { process.standardError = pipe }
        let output = LineCollector()
        let exited = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Int32.self)
        process.terminationHandler = { exited.succeed($0.terminationStatus) }
        do {
            try process.run()
        } catch {
            exited.fail(error)
            throw error
        }
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread {
            var pending = ""
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                pending += String(decoding: data, as: UTF8.self)
                while let newline = pending.firstIndex(of: "\n") {
                    output.append(String(pending[..<newline]))
                    pending = String(pending[pending.index(after: newline)...])
                }
            }
        }
        return ChildProcess(process: process, output: output, exited: exited)
    }

    var pid: Int32 { self.process.processIdentifier }

    func waitForLine(containing text: String, timeout: Duration = .seconds(30)) async throws -> String {
        try await self.output.waitForLine(containing: text, timeout: timeout, what: "a line containing '\(text)' from \(self.process.executableURL?.lastPathComponent ?? "the process")")
    }

    /// The exit status, once the process has exited within `seconds`.
    func waitForExit(seconds: Double) async throws -> Int32 {
        let exited = self.exited
        return try await withTimeout(seconds, "the process to exit") { try await exited.futureResult.get() }
    }

    func signal(_ signal: Int32) {
        if self.process.isRunning { kill(self.pid, signal) }
    }

    /// Kills the process if it still runs (for `defer`).
    func stop() {
        self.signal(SIGKILL)
    }
}
