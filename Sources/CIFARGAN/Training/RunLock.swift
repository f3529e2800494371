import Foundation
import GANCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a run folder while a process writes it: `flock` on `RUN/.lock`, which holds the
/// writer's process id. A second writer (another `train` on the same `--run`, or a `--resume` of a run still
/// training) is refused with the folder and the holder's pid; the kernel drops the lock when its process
/// exits or is killed, so a stale `.lock` file never blocks a resume. Re-entrant within a process.
///
/// ```swift
/// let lock = try RunLock(runFolder: url)   // held until `lock` is released or deinitialised
/// ```
public final class RunLock {
    public struct Held: UserFacingError {
        public let description: String
    }

    private static let registry = NSLock()
    nonisolated(unsafe) private static var held: [String: (fd: Int32, count: Int)] = [:]
    private let path: String

    public init(runFolder: URL) throws {
        try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)
        let file = RunFolder(runFolder).lockFile.path
        path = file
        RunLock.registry.lock()
        defer { RunLock.registry.unlock() }
        if let h = RunLock.held[file] {
            RunLock.held[file] = (h.fd, h.count + 1)
            return
        }
        let fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Held(description: "\(runFolder.path): cannot create its lock file .lock (\(String(cString: strerror(errno))))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = pread(fd, &buffer, 255, 0)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "another process"
            throw Held(description: "\(runFolder.path): another cifar-gan is writing this run (\(holder)); "
                + "wait for it to finish or stop it, or choose another --run folder")
        }
        let note = Array("process \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(ISO8601DateFormatter().string(from: Date()))\n".utf8)
        _ = ftruncate(fd, 0)
        _ = note.withUnsafeBytes { pwrite(fd, $0.baseAddress, note.count, 0) }
        RunLock.held[file] = (fd, 1)
    }

    deinit {
        RunLock.registry.lock()
        defer { RunLock.registry.unlock() }
        guard let h = RunLock.held[path] else { return }
        if h.count > 1 {
            RunLock.held[path] = (h.fd, h.count - 1)
        } else {
            RunLock.held[path] = nil
            close(h.fd)   // releases the flock
        }
    }
}
