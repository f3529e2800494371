/// An error a user sees as one line that names the file, field or flag at fault, with the exit status the
/// command line ends with: 1 for bad or missing input (the default), 2 for a bad configuration, 3 when
/// training diverged. Every error type of the toolkit conforms, so `cifar-gan` has one place that reports them.
///
/// ```swift
/// struct Missing: UserFacingError { var description: String }
/// let error: UserFacingError = Missing(description: "runs/cat: not a run folder (no config.json)")
/// print(error.exitCode)   // 1
/// ```
public protocol UserFacingError: Error, CustomStringConvertible {
    var exitCode: Int32 { get }
}

extension UserFacingError {
    public var exitCode: Int32 { 1 }
}
