import Foundation
import GANCore

extension Jobs {
    /// File formats a trained generator can be exported to.
    public enum ExportFormat: String, Sendable, CaseIterable { case onnx }

    /// Writes one generator of a run as an ONNX model: input `z` [N, latent] (and `class` [N], int64, for a
    /// conditional model), output `images` [N, 3, 32, 32] in [−1, 1] — what `generate --format safetensors`
    /// writes for the same latents. The moving average of G is exported when the run kept one, unless
    /// `rawGenerator`. A run of several per-class models needs `className`. Returns a one-line summary.
    ///
    /// ```swift
    /// let line = try Jobs.export(runFolder: run, className: nil, checkpoint: nil, out: URL(fileURLWithPath: "g.onnx"))
    /// ```
    @discardableResult
    public static func export(runFolder: URL, className: String?, checkpoint: String?, format: ExportFormat = .onnx,
                              rawGenerator: Bool = false, out: URL) throws -> String {
        let models = try modelFolders(in: runFolder, className: className)
        // A conditional run lists one entry per class, all of one model: the export takes the class as an input.
        let folders = Set(models.map(\.folder.standardizedFileURL.path))
        guard folders.count == 1, let model = models.first else {
            throw ConfigError("\(runFolder.path) holds \(folders.count) models (\(models.map(\.name).joined(separator: ", "))); choose one with --class")
        }
        let sampler = try Sampler(runFolder: model.folder, checkpoint: checkpoint, rawGenerator: rawGenerator)
        let generator = rawGenerator ? sampler.gan.generator : sampler.gan.samplingGenerator
        let graph = ONNXGraph(name: "generator")
        let z = graph.input("z", shape: [nil, sampler.config.model.latentDim])
        let y = try graph.add(generator, input: z)
        graph.output(y, as: "images", shape: [nil, 3, 32, 32])
        let which = rawGenerator || sampler.gan.generatorEMA == nil ? "G" : "the moving average of G"
        let doc = "cifar-gan generator (\(which)) of \(model.folder.path), checkpoint \(sampler.checkpoint.lastPathComponent); "
            + "z ~ N(0, 1)" + (graph.classInput != nil ? ", class: CIFAR-10 label 0…\(sampler.config.model.classes - 1)" : "")
            + "; images in [-1, 1], NCHW RGB"
        try FileManager.default.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        do {
            try graph.serialized(docString: doc).write(to: out, options: .atomic)
        } catch {
            throw DataError("\(out.path): cannot write the ONNX file (\(error.localizedDescription))")
        }
        return "\(out.path): \(which) from \(sampler.checkpoint.lastPathComponent) as ONNX (opset 17), inputs z"
            + (graph.classInput != nil ? " and class" : "") + ", output images"
    }
}
