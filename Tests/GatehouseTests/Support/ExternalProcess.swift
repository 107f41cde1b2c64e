import Foundation

/// Runs an independent peer (Python, openssl) as a child process with a deadline.
enum ExternalProcess {
    struct Result {
        var status: Int32
        var output: String
    }

    /// Path of a file under `Tests/GatehouseTests/Peers`.
    static func peerScript(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Peers").appendingPathComponent(name).path
    }

    /// Runs `arguments` (first is the program, looked up in PATH) and returns its status and combined output.
    static func run(_ arguments: [String], timeout: Double, stdin: [UInt8]? = nil) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let input = Pipe()
        process.standardInput = input
        let finished = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { finished.continuation.yield($0.terminationStatus) }
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin)) }
        try? input.fileHandleForWriting.close()
        // Blocking reads go to a GCD thread: Swift concurrency's pool has one thread per core, and a blocked
        // pool thread would starve the timer below.
        let reader = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<Data, Never>) in
                Thread.detachNewThread { continuation.resume(returning: output.fileHandleForReading.readDataToEndOfFile()) }
            }
        }
        let timer = Task {
            try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
            kill(process.processIdentifier, SIGKILL)
        }
        var status: Int32 = -1
        for await value in finished.stream {
            status = value
            break
        }
        timer.cancel()
        let data = await reader.value
        if process.terminationReason == .uncaughtSignal && status != 0 {
            return Result(status: status, output: String(decoding: data, as: UTF8.self) + "\n(killed after \(timeout)s)")
        }
        return Result(status: status, output: String(decoding: data, as: UTF8.self))
    }
}
