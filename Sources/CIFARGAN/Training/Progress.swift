import Foundation

/// A one-line progress bar on a terminal; plain periodic lines otherwise (logs, CI).
public final class ProgressDisplay {
    let isTerminal = isatty(STDOUT_FILENO) != 0
    private var lastPrint = Date.distantPast
    private var drawn = false
    public var enabled = true
    public init() {}

    func update(title: String, epoch: Int, epochs: Int, fraction: Double, imagesPerSec: Double, lossD: Double, lossG: Double, eta: Double) {
        guard enabled else { return }
        let now = Date()
        if isTerminal {
            guard now.timeIntervalSince(lastPrint) > 0.2 || fraction >= 1 else { return }
            let width = 24, filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = String(format: "\r%@ %d/%d %@ %3.0f%% %5.0f img/s loss_d %.3f loss_g %.3f ETA %@ ",
                              title, epoch, epochs, bar, fraction * 100, imagesPerSec, lossD, lossG, formatDuration(eta))
            FileHandle.standardOutput.write(Data(line.utf8))
            drawn = true
        } else {
            guard now.timeIntervalSince(lastPrint) > 30 else { return }
            say(String(format: "%@ epoch %d/%d %.0f%%: %.0f img/s loss_d %.3f loss_g %.3f ETA %@",
                         title, epoch, epochs, fraction * 100, imagesPerSec, lossD, lossG, formatDuration(eta)))
        }
        lastPrint = now
    }

    func finishLine() {
        if drawn { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)); drawn = false }
    }
}

public func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "--:--" }
    let t = Int(s)
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}

/// Prints a line and flushes it, so logs written to a file or a pipe show progress as it happens.
public func say(_ line: String) {
    print(line)
    fflush(nil)
}
