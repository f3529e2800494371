import Foundation

/// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
/// an 8-byte little-endian header length, a JSON header mapping each name to
/// `{"dtype", "shape", "data_offsets"}` (plus optional string `__metadata__`), then the raw
/// little-endian tensor bytes. PyTorch loads these with `safetensors.torch.load_file`.
///
/// ```swift
/// try SafeTensors.write(net.stateDict, metadata: ["format": "pt"], to: url)
/// let loaded = try SafeTensors.read(from: url)      // [name: SafeTensors.Entry]
/// ```
public enum SafeTensors {
    public enum DType: String, Sendable { case f32 = "F32", i64 = "I64" }

    /// One tensor as read from a file; integer tensors are converted to float.
    public struct Entry: Sendable {
        public var dtype: DType
        public var shape: [Int]
        public var values: [Float]
        public init(dtype: DType, shape: [Int], values: [Float]) { self.dtype = dtype; self.shape = shape; self.values = values }
    }

    public struct FormatError: UserFacingError {
        public let description: String
        init(_ file: String, _ what: String) { description = "\(file): not a valid safetensors file: \(what)" }
    }

    /// Serialises entries in the given order (the header's JSON keys are sorted, data follows entry order).
    public static func encode(_ entries: [StateEntry], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        var body = Data()
        for e in entries {
            let dtype: DType = e.isInteger ? .i64 : .f32
            var bytes = Data()
            if e.isInteger {
                var ints = (0..<e.tensor.count).map { Int64(e.tensor[$0]).littleEndian }
                bytes = Data(bytes: &ints, count: ints.count * 8)
            } else {
                var floats = (0..<e.tensor.count).map { e.tensor[$0].bitPattern.littleEndian }
                bytes = Data(bytes: &floats, count: floats.count * 4)
            }
            header[e.name] = ["dtype": dtype.rawValue, "shape": e.tensor.shape,
                              "data_offsets": [offset, offset + bytes.count]] as [String: Any]
            offset += bytes.count
            body.append(bytes)
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces to 8 bytes so the data section is aligned (the reference writer does this).
        while json.count % 8 != 0 { json.append(0x20) }
        var length = UInt64(json.count).littleEndian
        var out = Data(bytes: &length, count: 8)
        out.append(json)
        out.append(body)
        return out
    }

    /// Writes atomically: a temporary file in the same folder, then a rename.
    public static func write(_ entries: [StateEntry], metadata: [String: String] = [:], to url: URL) throws {
        try writeAtomically(try encode(entries, metadata: metadata), to: url)
    }

    public static func read(from url: URL) throws -> [String: Entry] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FormatError(url.path, "cannot read the file (\(error.localizedDescription))")
        }
        return try decode(data, file: url.path)
    }

    public static func readMetadata(from url: URL) throws -> [String: String] {
        let data = try Data(contentsOf: url)
        let (header, _) = try parseHeader(data, file: url.path)
        return header["__metadata__"] as? [String: String] ?? [:]
    }

    static func parseHeader(_ data: Data, file: String) throws -> ([String: Any], Int) {
        guard data.count >= 8 else { throw FormatError(file, "shorter than its 8-byte header length") }
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
        guard n <= UInt64(data.count - 8), n < 100_000_000 else {
            throw FormatError(file, "header length \(n) exceeds the file size \(data.count)")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(n)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw FormatError(file, "header is not a JSON object")
        }
        return (header, 8 + Int(n))
    }

    public static func decode(_ data: Data, file: String = "<memory>") throws -> [String: Entry] {
        let (header, start) = try parseHeader(data, file: file)
        let bodyCount = data.count - start
        var result: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw FormatError(file, "entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw FormatError(file, "entry '\(name)' has dtype \(dtypeName); only F32 and I64 are supported")
            }
            // Sizes come from the file: multiply with overflow checks (a forged shape must not wrap around).
            var count = 1, overflow = false
            for d in shape { let (m, o) = count.multipliedReportingOverflow(by: max(d, 0)); count = m; overflow = overflow || o }
            let width = dtype == .f32 ? 4 : 8
            guard !overflow, count <= bodyCount, shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[1] <= bodyCount,
                  offsets[1] - offsets[0] == count * width else {
                throw FormatError(file, "entry '\(name)' data_offsets \(offsets) do not fit shape \(shape) and a \(bodyCount)-byte body")
            }
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                let base = raw.baseAddress! + start + offsets[0]
                for i in 0..<count {
                    if dtype == .f32 {
                        values[i] = Float(bitPattern: UInt32(littleEndian: (base + 4 * i).loadUnaligned(as: UInt32.self)))
                    } else {
                        values[i] = Float(Int64(littleEndian: (base + 8 * i).loadUnaligned(as: Int64.self)))
                    }
                }
            }
            result[name] = Entry(dtype: dtype, shape: shape, values: values)
        }
        return result
    }

    /// Copies entries into a state dict's tensors, checking that every name exists with the same shape.
    public static func load(_ entries: [String: Entry], into state: [StateEntry], file: String, prefix: String = "") throws {
        for e in state {
            guard let src = entries[prefix + e.name] else {
                throw FormatError(file, "missing tensor '\(prefix + e.name)' (is this a checkpoint of another architecture?)")
            }
            guard src.shape == e.tensor.shape else {
                throw FormatError(file, "tensor '\(prefix + e.name)' has shape \(src.shape), the model expects \(e.tensor.shape) (another architecture?)")
            }
            src.values.withUnsafeBufferPointer { e.tensor.data.update(from: $0.baseAddress!, count: e.tensor.count) }
        }
    }
}

/// Writes `data` to a temporary file beside `url`, flushes it, then renames it over `url`,
/// so a crash at any moment leaves either the old file or the new one, never half of one.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let dir = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: tmp.path])
    }
    let handle = try FileHandle(forWritingTo: tmp)
    try handle.write(contentsOf: data)
    try handle.synchronize()
    try handle.close()
    if rename(tmp.path, url.path) != 0 {
        let err = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path, NSLocalizedDescriptionKey: "cannot rename \(tmp.path) to \(url.path): \(err)"])
    }
}
