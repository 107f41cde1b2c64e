import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throw-away PostgreSQL cluster for the tests: initdb into a temporary directory, loopback only, on a free port,
/// password (SCRAM) authentication over TCP for the role `gatehouse_test`, trust over the socket (inside the
/// directory) for the superuser that creates databases.
///
/// ``shared()`` starts one cluster per test process (stopped at exit); each test takes its own database from it with
/// ``createDatabase()``. ``dedicated()`` gives a cluster of its own to a test that stops and restarts the server.
/// PostgreSQL refuses to run as root: as root the binaries run as the `postgres` user (`runuser`).
final class PostgresFixture: Sendable {
    static let role = "gatehouse_test"

    /// Whether tests needing PostgreSQL can run here. With `GATEHOUSE_REQUIRE_POSTGRES=1` they always run, and the
    /// fixture throws when the binaries are missing (CI must not skip them silently).
    static var isAvailable: Bool {
        Self.required || (try? Setup.find()) != nil
    }

    static var required: Bool { ProcessInfo.processInfo.environment["GATEHOUSE_REQUIRE_POSTGRES"] == "1" }

    let setup: Setup
    /// The temporary directory: `data`, `sock`, `log`.
    let root: String
    let port: Int
    let password: String

    private init(setup: Setup, root: String, port: Int, password: String) {
        self.setup = setup
        self.root = root
        self.port = port
        self.password = password
    }

    var dataDirectory: String { self.root + "/data" }
    var socketDirectory: String { self.root + "/sock" }

    /// The cluster shared by the test process, started on first use.
    static func shared() async throws -> PostgresFixture {
        try await SharedCluster.instance.fixture()
    }

    /// A cluster of its own; ``destroy()`` it at the end of the test.
    static func dedicated() async throws -> PostgresFixture {
        try await self.make()
    }

    /// A fresh database owned by the test role; returns its URL (no TLS).
    func createDatabase() async throws -> String {
        let name = "gh_" + Self.randomHex(8)
        try await self.psql("CREATE DATABASE \(name) OWNER \(Self.role)")
        return "postgres://\(Self.role):\(self.password)@127.0.0.1:\(self.port)/\(name)?sslmode=disable"
    }

    /// Stops the server (fast: open connections are terminated), keeping its data.
    func stop() async throws {
        try await self.setup.run([self.setup.pgCtl, "-D", self.dataDirectory, "-m", "fast", "-w", "-t", "30", "stop"], in: self.root)
    }

    /// Starts the server again, same port and data.
    func start() async throws {
        try await self.setup.run(self.startArguments(), in: self.root, timeout: 60)
    }

    /// Stops the server at once and removes its directory.
    func destroy() async {
        let root = self.root
        // pg_ctl is waited for with waitpid: keep that off the concurrency pool.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                Cleanup.stop(root)
                continuation.resume()
            }
        }
    }

    // MARK: Making a cluster

    private static func make() async throws -> PostgresFixture {
        let setup = try Setup.find()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("gatehouse-pg-\(Self.randomHex(6))").path
        try FileManager.default.createDirectory(atPath: root + "/sock", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let owner = setup.owner {
            for path in [root, root + "/sock"] where chown(path, owner.uid, owner.gid) != 0 {
                throw TestError("PostgresFixture: chown \(path) to postgres failed (errno \(errno))")
            }
        }
        Cleanup.register(root: root, setup: setup)
        do {
            try await setup.run(
                [setup.bin + "/initdb", "-D", root + "/data", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync",
                 "--auth-local=trust", "--auth-host=scram-sha-256"],
                in: root, timeout: 120)
            // A port picked free can be taken before the server binds it: try a few.
            var lastError: (any Error)?
            for _ in 0..<3 {
                let fixture = PostgresFixture(setup: setup, root: root, port: try Self.freePort(), password: Self.randomHex(16))
                do {
                    try await fixture.start()
                } catch {
                    lastError = error
                    continue
                }
                try await fixture.psql("CREATE ROLE \(Self.role) LOGIN CREATEDB PASSWORD '\(fixture.password)'")
                return fixture
            }
            throw lastError ?? TestError("PostgresFixture: the server did not start")
        } catch {
            Cleanup.stop(root)
            throw error
        }
    }

    private func startArguments() -> [String] {
        // Durability is useless here; speed and room for every test's pool are not.
        let options = [
            "-p \(self.port)", "-k \(self.socketDirectory)", "-c listen_addresses=127.0.0.1", "-c max_connections=400",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        ]
        return [
            self.setup.pgCtl, "-D", self.dataDirectory, "-l", self.root + "/log", "-w", "-t", "60",
            "-o", options.joined(separator: " "), "start",
        ]
    }

    /// Runs `sql` as the superuser over the socket.
    private func psql(_ sql: String) async throws {
        try await self.setup.run(
            [self.setup.bin + "/psql", "-X", "-q", "-h", self.socketDirectory, "-p", "\(self.port)", "-U", "postgres",
             "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
            in: self.root)
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("PostgresFixture: socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestError("PostgresFixture: bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestError("PostgresFixture: getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func randomHex(_ bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    // MARK: Binaries and user

    /// Where the binaries are and whom they run as.
    struct Setup: Sendable {
        struct Owner: Sendable {
            var uid: uid_t
            var gid: gid_t
        }

        /// The newest `/usr/lib/postgresql/*/bin`.
        var bin: String
        /// `runuser` when the tests run as root, nil otherwise.
        var runuser: String?
        /// The `postgres` user when the tests run as root.
        var owner: Owner?

        var pgCtl: String { self.bin + "/pg_ctl" }

        static func find() throws -> Setup {
            let base = "/usr/lib/postgresql"
            let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
                .compactMap { name in Int(name.split(separator: ".").first ?? "").map { (version: $0, name: name) } }
                .sorted { $0.version > $1.version }
            let tools = ["initdb", "pg_ctl", "postgres", "psql"]
            guard let newest = versions.first(where: { entry in
                tools.allSatisfy { FileManager.default.isExecutableFile(atPath: "\(base)/\(entry.name)/bin/\($0)") }
            }) else {
                throw TestError("PostgresFixture: no PostgreSQL binaries in \(base)/*/bin (apt-get install postgresql)")
            }
            var setup = Setup(bin: "\(base)/\(newest.name)/bin")
            if getuid() == 0 {
                guard let user = getpwnam("postgres") else {
                    throw TestError("PostgresFixture: running as root needs a 'postgres' user to run PostgreSQL as")
                }
                guard let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
                    .first(where: FileManager.default.isExecutableFile(atPath:))
                else { throw TestError("PostgresFixture: running as root needs runuser") }
                setup.runuser = runuser
                setup.owner = Owner(uid: user.pointee.pw_uid, gid: user.pointee.pw_gid)
            }
            return setup
        }

        /// `arguments` as the user PostgreSQL runs as.
        func command(_ arguments: [String]) -> [String] {
            guard let runuser else { return arguments }
            return [runuser, "-u", "postgres", "--"] + arguments
        }

        /// Runs a PostgreSQL tool in `directory`; throws with its output when it fails or outlives `timeout` seconds.
        func run(_ arguments: [String], in directory: String, timeout: Int = 30) async throws {
            let outputPath = directory + "/command-\(PostgresFixture.randomHex(4)).out"
            defer { try? FileManager.default.removeItem(atPath: outputPath) }
            guard let pid = Spawn.start(self.command(arguments), in: directory, output: outputPath) else {
                throw TestError("PostgresFixture: cannot start \(arguments.first ?? "")")
            }
            let timer = Task {
                try await Task.sleep(for: .seconds(timeout))
                kill(pid, SIGKILL)
            }
            let status = await Spawn.wait(pid)
            timer.cancel()
            guard status == 0 else {
                let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
                throw TestError("PostgresFixture: \(arguments.first ?? "") failed (status \(status)): \(text.suffix(2000))")
            }
        }
    }
}

/// Child processes without Foundation's `Process`: it reports an exit only once every descendant has closed the
/// descriptors it inherited, and the server that `pg_ctl start` leaves behind would hold them until it stops.
enum Spawn {
    /// Starts `arguments` (absolute program path first) in `directory`, stdin from /dev/null, stdout and stderr to
    /// `output` (or /dev/null), every other descriptor of the test process closed (bash walks /proc/self/fd: the
    /// server must not hold another test's pipes open). Returns the pid.
    static func start(_ arguments: [String], in directory: String, output: String? = nil) -> pid_t? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let script = #"cd "$0" || exit 97; for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; exec "$@""#
        let command = ["/bin/bash", "-c", script, directory] + arguments
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/bash", &actions, nil, argv, environ) == 0 else { return nil }
        return pid
    }

    /// Waits for `pid` on a thread of its own (never a GCD worker or the concurrency pool, see `ChildProcess`); its exit status, or -1.
    static func wait(_ pid: pid_t) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.waitBlocking(pid)) }
        }
    }

    static func waitBlocking(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return -1 }
        }
        // Exited normally: its code; killed: 128 + signal, like a shell.
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }
}

/// The shared cluster, started once however many tests ask at the same time.
private actor SharedCluster {
    static let instance = SharedCluster()
    private var starting: Task<PostgresFixture, any Error>?

    func fixture() async throws -> PostgresFixture {
        if let starting { return try await starting.value }
        let task = Task { try await PostgresFixture.dedicated() }
        self.starting = task
        return try await task.value
    }
}

/// Clusters to stop when the test process exits (`atexit`: no Swift concurrency there, so plain `posix_spawn`).
private enum Cleanup {
    struct Entry: Sendable {
        var setup: PostgresFixture.Setup
    }

    static let running = Mutex<[String: Entry]>([:])
    private static let installed = Mutex(false)

    static func register(root: String, setup: PostgresFixture.Setup) {
        let install = self.installed.withLock { installed in
            defer { installed = true }
            return !installed
        }
        if install { atexit { Cleanup.stopAll() } }
        self.running.withLock { $0[root] = Entry(setup: setup) }
    }

    static func stopAll() {
        let roots = self.running.withLock { $0.keys.sorted() }
        for root in roots { self.stop(root) }
    }

    /// Stops the cluster in `root` at once (if it runs) and removes the directory; best effort.
    static func stop(_ root: String) {
        guard let entry = self.running.withLock({ $0.removeValue(forKey: root) }) else { return }
        if FileManager.default.fileExists(atPath: root + "/data/postmaster.pid") {
            Spawn.start(entry.setup.command([entry.setup.pgCtl, "-D", root + "/data", "-m", "immediate", "-w", "stop"]), in: root)
                .map { _ = Spawn.waitBlocking($0) }
        }
        Spawn.start(["/bin/rm", "-rf", root], in: "/").map { _ = Spawn.waitBlocking($0) }
    }
}
