import GANCore

extension EvaluationResult {
    /// Under mpirun each rank evaluates some of the groups (`evaluate` deals them out by index); this brings every
    /// group's result to every rank, in the order of `names`, through one allreduce of a table
    /// (`Communicator.gatherRows`: each row filled by the rank that owns it). Without a world it returns `local` as it is.
    ///
    /// ```swift
    /// let all = EvaluationResult.gathered([], names: ["cat"], world: nil)   // [] (one process: nothing to gather)
    /// ```
    public static func gathered(_ local: [EvaluationResult], names: [String], world: Communicator?) -> [EvaluationResult] {
        guard let world, world.size > 1 else { return local }
        let rows = local.compactMap { r in
            names.firstIndex(of: r.name).map {
                (index: $0, values: [Double(r.count), Double(r.referenceCount), r.fid, r.kid, r.kidStd, r.precision, r.recall,
                                     r.recognitionRate == nil ? 0 : 1, r.recognitionRate ?? 0, r.inceptionScore])
            }
        }
        return world.gatherRows(rows, rows: names.count, width: 10).enumerated().compactMap { i, row in
            row.map { t in
                EvaluationResult(name: names[i], count: Int(t[0]), referenceCount: Int(t[1]), fid: t[2], kid: t[3], kidStd: t[4],
                                 precision: t[5], recall: t[6], recognitionRate: t[7] == 1 ? t[8] : nil, inceptionScore: t[9])
            }
        }
    }
}
