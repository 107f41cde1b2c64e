import Foundation
import NIOCore
import NIOPosix

/// A long-running child process (the `gatehouse` binary, a Python peer) whose output lines and exit the test awaits.
/// Standard output and standard error go to one `LineCollector`, read on a GCD thread (never the concurrency pool).
struct ChildProcess {
    let process: Process
    let output: LineCollector
    private let exited: EventLoopPromise<Int32>

    /// Starts `executable ARGUMENTS`; with `mergeStandardError` false, standard error stays the test's own.
    static func start(_ executable: String, _ arguments: [String], mergeStandardError: Bool = true) throws -> ChildProcess {
        let process = Process()
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
        DispatchQueue.global().async {
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
