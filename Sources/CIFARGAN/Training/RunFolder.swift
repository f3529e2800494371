import Foundation
import GANCore

/// A run folder and every name in it — the one place that spells them:
///
///     config.json          the run's configuration (`RunConfig`)
///     metrics.jsonl        one line per epoch (`EpochMetrics`)
///     samples/epoch-NNNN.png, report.html, events.out.tfevents.* (with --tensorboard)
///     checkpoints/epoch-NNNN/   and the pointer files checkpoints/latest, final, best, pre-domination
///     .lock                the writer's lock (`RunLock`)
///     <class>/             a run of every class: one run folder per class
///
/// ```swift
/// let run = RunFolder(URL(fileURLWithPath: "runs/cat"))
/// let config = try run.loadConfig()
/// let newest = run.pointer(.latest)      // "epoch-0012"
/// ```
public struct RunFolder: Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }
    public init(path: String) { url = URL(fileURLWithPath: path) }

    public var path: String { url.path }
    public var configFile: URL { url.appendingPathComponent("config.json") }
    public var metricsFile: URL { url.appendingPathComponent("metrics.jsonl") }
    public var samples: URL { url.appendingPathComponent("samples") }
    public var report: URL { url.appendingPathComponent("report.html") }
    public var checkpoints: URL { url.appendingPathComponent("checkpoints") }
    public var lockFile: URL { url.appendingPathComponent(".lock") }
    public func sampleGrid(epoch: Int) -> URL { samples.appendingPathComponent(String(format: "epoch-%04d.png", epoch)) }
    public func checkpoint(_ folderName: String) -> URL { checkpoints.appendingPathComponent(folderName) }
    /// The run folder of one class inside a run of every class.
    public func classRun(_ name: String) -> RunFolder { RunFolder(url.appendingPathComponent(name)) }

    /// Whether the folder holds a run (its config.json).
    public var holdsRun: Bool { FileManager.default.fileExists(atPath: configFile.path) }

    /// The run's configuration; a clear error when the folder is not a run.
    public func loadConfig() throws -> RunConfig {
        guard holdsRun else { throw DataError("\(path): not a run folder (no config.json)") }
        return try RunConfig.load(from: configFile)
    }

    public func saveConfig(_ config: RunConfig) throws { try writeAtomically(try config.encoded(), to: configFile) }

    /// The checkpoint folder a pointer names, or nil when the pointer is not there (yet).
    public func pointer(_ pointer: CheckpointPointer) -> String? { Checkpoint.pointer(pointer, in: checkpoints) }

    public func setPointer(_ pointer: CheckpointPointer, to folderName: String) throws {
        try Checkpoint.setPointer(pointer, to: folderName, in: checkpoints)
    }

    /// The periodic checkpoint folders, oldest first.
    public var checkpointFolders: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []).filter { $0.hasPrefix("epoch-") }.sorted()
    }
}

/// The pointer files in `checkpoints/`, each naming one checkpoint folder.
public enum CheckpointPointer: String, CaseIterable, Sendable {
    /// The newest checkpoint; `--resume` continues from it.
    case latest
    /// Where the run ended (its last epoch, or the time limit).
    case final
    /// The best in-training FID (`eval_every`).
    case best
    /// The last epoch before D began to dominate (auto-stop).
    case preDomination = "pre-domination"
}
