import ArgumentParser
import CIFARGAN
import Foundation
import GANCore

/// `cifar-gan sweep FILE --out DIR`: the trials of a `SweepPlan`, each a run folder `DIR/trial-NN`, ranked by FID.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search recipe options at a fixed budget per trial and rank the trials by FID (across mpirun's ranks, or one after another).",
        discussion: """
        FILE (JSON): {"target": "cat", "minutes": 10, "base": {"preset": "modern"}, "grid": {"optimizer.generator_lr": \
        [0.0001, 0.0002], "loss": ["bce", "hinge"]}, "random": 0, "seed": 0, "eval_count": 1000}. Every combination of the \
        grid's values (or "random" of them) trains one model of the target class for "minutes" (or "epochs"); each is \
        judged on eval_count samples against the class's training images. Writes DIR/sweep.md (ranked table), \
        DIR/sweep.jsonl and DIR/sweep.svg. Run again to continue an interrupted sweep: finished trials are kept.
        """)

    @Argument(help: "The sweep file.") var file: String
    @Option(help: "Output folder: a run folder per trial, and the table and chart.") var out: String
    @OptionGroup var data: DataFlags

    func run() throws {
        let plan = try SweepPlan.decode(json: try Data(contentsOf: URL(fileURLWithPath: file)), file: file)
        let world = Communicator.world, rank = world?.rank ?? 0
        let log: (String) -> Void = world.map { w in { say("rank \(w.rank): \($0)") } } ?? say
        let configs = try plan.trials.indices.map { try plan.config(trial: $0) }   // every trial checked before any trains
        let dataset = try Jobs.loadData(configs[0], try data.options(), log: log)
        let label = try Jobs.classIndex(plan.target, in: dataset.classNames), className = dataset.classNames[label]
        let judge = try Judge(folder: Judge.defaultFolder)
        let reference = try Evaluator.referenceFeatures(judge: judge, split: .train, className: className, dataDir: data.dataDir,
                                                        limit: plan.evalCount)
        let root = URL(fileURLWithPath: out)
        let names = plan.trials.indices.map { String(format: "trial-%02d", $0) }
        var results: [EvaluationResult] = []
        for i in plan.trials.indices where world?.owns(i) ?? true {
            var config = configs[i]
            config.target = .oneClass(className)
            let folder = root.appendingPathComponent(names[i]), run = RunFolder(folder)
            if run.pointer(.final) == nil {
                log("\(names[i]): \(plan.label(trial: i))")
                _ = try Jobs.train(config: config, runFolder: folder, resume: run.holdsRun, data: dataset,
                                   quiet: true, alone: true, log: log)
            }
            let pixels = try Sampler(runFolder: folder, checkpoint: nil).sample(count: plan.evalCount, seed: plan.seed, classLabel: nil)
                .flatMap(\.planar)
            results.append(try Evaluator.evaluate(name: names[i], pixels: pixels, reference: reference, judge: judge,
                                                  classLabel: label, seed: plan.seed))
            log(String(format: "%@: FID %.3f", names[i], results.last!.fid))
        }
        results = EvaluationResult.gathered(results, names: names, world: world)
        guard rank == 0 else { return }
        try SweepReport.write(plan: plan, results: results, names: names, className: className, to: root)
        print(try String(contentsOf: root.appendingPathComponent("sweep.md"), encoding: .utf8))
    }
}
