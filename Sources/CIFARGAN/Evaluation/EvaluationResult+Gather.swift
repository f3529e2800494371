import GANCore

extension EvaluationResult {
    /// Under mpirun each rank evaluates some of the groups (`evaluate` deals them out by index); this brings every
    /// group's result to every rank, in the order of `names`, through one allreduce of a [groups × 10] table
    /// (each row filled by the rank that owns it, zeros elsewhere). Without a world it returns `local` as it is.
    ///
    /// ```swift
    /// let all = EvaluationResult.gathered([], names: ["cat"], world: nil)   // [] (one process: nothing to gather)
    /// ```
    public static func gathered(_ local: [EvaluationResult], names: [String], world: Communicator?) -> [EvaluationResult] {
        guard let world, world.size > 1 else { return local }
        let width = 10
        var table = [Double](repeating: 0, count: names.count * width)
        for r in local {
            guard let i = names.firstIndex(of: r.name) else { continue }
            let row = [1, Double(r.count), Double(r.referenceCount), r.fid, r.kid, r.kidStd, r.precision, r.recall,
                       r.recognitionRate == nil ? 0 : 1, r.recognitionRate ?? 0]
            table.replaceSubrange(i * width..<(i + 1) * width, with: row)
        }
        var scores = [Double](repeating: 0, count: names.count)
        for r in local { if let i = names.firstIndex(of: r.name) { scores[i] = r.inceptionScore } }
        table.withUnsafeMutableBufferPointer { world.allreduceSum($0.baseAddress!, count: $0.count) }
        scores.withUnsafeMutableBufferPointer { world.allreduceSum($0.baseAddress!, count: $0.count) }
        return names.indices.compactMap { i in
            let t = Array(table[i * width..<(i + 1) * width])
            guard t[0] == 1 else { return nil }
            return EvaluationResult(name: names[i], count: Int(t[1]), referenceCount: Int(t[2]), fid: t[3], kid: t[4],
                                    kidStd: t[5], precision: t[6], recall: t[7], recognitionRate: t[8] == 1 ? t[9] : nil,
                                    inceptionScore: scores[i])
        }
    }
}
