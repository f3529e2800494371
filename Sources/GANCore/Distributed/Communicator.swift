import CMPI
import Foundation

/// The processes of an `mpirun` job, on Open MPI loaded at run time (`Sources/CMPI`): the same binary runs alone or
/// as one rank of many, and builds where MPI is not installed.
///
/// `joinWorld()` is called once at start-up. Started without a launcher (or by `mpirun -np 1`) it returns nil and
/// everything runs as one process. Started by `mpirun -np N` (N > 1) it initialises MPI and returns the world — or,
/// where Open MPI cannot be loaded, throws rather than letting N unrelated copies train side by side.
///
/// ```swift
/// if let world = try Communicator.joinWorld() {
///     print("rank \(world.rank) of \(world.size)")
///     world.barrier()
/// }
/// ```
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int

    /// The world joined by `joinWorld`, if any.
    nonisolated(unsafe) public private(set) static var world: Communicator?

    /// The ranks an MPI launcher started, read from its environment (1 without one): known before MPI loads.
    public static var launchedSize: Int { Int(mpi_shim_launched_size()) }
    public static var launchedRank: Int { Int(mpi_shim_launched_rank()) }
    /// Ranks on this machine: they share its cores (`Parallel.workerCount` divides them).
    public static var launchedLocalSize: Int { max(1, Int(mpi_shim_launched_local_size())) }

    private init(rank: Int, size: Int) { self.rank = rank; self.size = size }

    /// Joins the job this process was launched into; nil when it runs alone.
    public static func joinWorld() throws -> Communicator? {
        if let world { return world }
        guard launchedSize > 1 else { return nil }
        guard mpi_shim_init() == 0 else {
            throw MPIUnavailable(description:
                "started by an MPI launcher as rank \(launchedRank) of \(launchedSize), but \(String(cString: mpi_shim_error())); "
                + "install Open MPI (scripts/install-deps installs it) or run without mpirun")
        }
        world = Communicator(rank: Int(mpi_shim_rank()), size: Int(mpi_shim_size()))
        return world
    }

    /// A failed collective means another rank is gone or MPI broke: end the whole job, naming this rank.
    private func check(_ status: Int32, _ what: String) {
        guard status != 0 else { return }
        FileHandle.standardError.write(Data("error: rank \(rank) of \(size): \(what) failed: \(String(cString: mpi_shim_error()))\n".utf8))
        mpi_shim_abort(3)
    }

    /// What the collectives of this process have cost so far: calls, bytes contributed, and seconds inside them
    /// (the transfer and any wait for a slower rank). `bench` under mpirun reports them per iteration.
    public struct Traffic: Sendable {
        public var calls = 0
        public var bytes = 0
        public var seconds = 0.0
        public init() {}
    }
    public private(set) var traffic = Traffic()

    private func counted(_ bytes: Int, _ body: () -> Int32) -> Int32 {
        let start = DispatchTime.now().uptimeNanoseconds
        let status = body()
        traffic.calls += 1; traffic.bytes += bytes
        traffic.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        return status
    }

    /// Every rank's `count` values summed, in place, on every rank.
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        check(counted(4 * count) { mpi_shim_allreduce_float(buffer, count, 0) }, "allreduce")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) {
        check(counted(8 * count) { mpi_shim_allreduce_double(buffer, count, 0) }, "allreduce")
    }

    /// Every rank's values summed, in place.
    public func allreduceSum(_ values: inout [Double]) {
        values.withUnsafeMutableBufferPointer { allreduceSum($0.baseAddress!, count: $0.count) }
    }

    /// Whether item `index` of a list dealt out to the ranks (by index modulo the ranks) is this rank's.
    public func owns(_ index: Int) -> Bool { index % size == rank }

    /// Rows of a `rows` × `width` table that each rank fills in part (its `local` rows, by index) on every rank:
    /// one allreduce; nil for a row no rank filled.
    public func gatherRows(_ local: [(index: Int, values: [Double])], rows: Int, width: Int) -> [[Double]?] {
        let w = width + 1   // a leading 1 marks a filled row
        var table = [Double](repeating: 0, count: rows * w)
        for (i, values) in local {
            precondition(values.count == width, "gatherRows: \(values.count) values for width \(width)")
            table.replaceSubrange(i * w..<(i + 1) * w, with: [1] + values)
        }
        allreduceSum(&table)
        return (0..<rows).map { i in table[i * w] == 1 ? Array(table[(i * w + 1)..<((i + 1) * w)]) : nil }
    }

    /// `bytes` bytes from `root`'s buffer into every other rank's.
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0) {
        check(counted(bytes) { mpi_shim_broadcast(buffer, bytes, Int32(root)) }, "broadcast")
    }

    public func barrier() { check(mpi_shim_barrier(), "barrier") }

    /// Ends every rank of the job with this exit status.
    public func abort(exitCode: Int32) -> Never { mpi_shim_abort(exitCode); fatalError("MPI_Abort returned") }

    /// At the end of a run: MPI must be finalised before the process exits normally.
    public func finalize() { mpi_shim_finalize() }
}

/// Started by mpirun, but MPI cannot be loaded (exit status 1).
public struct MPIUnavailable: UserFacingError { public var description: String }
