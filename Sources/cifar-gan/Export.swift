import ArgumentParser
import CIFARGAN
import Foundation

extension Jobs.ExportFormat: ExpressibleByArgument {}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a trained generator as an ONNX model (inputs z and, for a conditional run, class; output images in [-1, 1]).",
        discussion: """
          cifar-gan export --run runs/cifar-gan --format onnx --out generator.onnx
          cifar-gan generate --run runs/cifar-gan --format safetensors --count 8 --out check/   # the same latents' outputs
        """)

    @Option(name: .customLong("run"), help: "Run folder.") var runFolder: String
    @Option(name: .customLong("class"), help: "The model of this class, for a run of one model per class.") var className: String?
    @Option(help: "Checkpoint: best, final, latest, pre-domination, or an epoch number (default as for generate).") var checkpoint: String?
    @Option(help: "Export format: \(Jobs.ExportFormat.allCases.map(\.rawValue).joined(separator: ", ")).") var format: Jobs.ExportFormat = .onnx
    @Option(help: "Output file.") var out: String
    @Flag(name: .customLong("no-ema"), help: "Export G itself, not the moving average of its weights.") var noEMA = false

    func run() throws {
        say(try Jobs.export(runFolder: URL(fileURLWithPath: runFolder), className: className, checkpoint: checkpoint, format: format,
                            rawGenerator: noEMA, out: URL(fileURLWithPath: out)))
    }
}
