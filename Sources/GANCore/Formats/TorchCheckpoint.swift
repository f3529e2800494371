import Foundation

/// Reads a PyTorch state dict saved with `torch.save` — the zip format (PyTorch ≥ 1.6) or the legacy one
/// (a pickled magic number, protocol version and system info, the pickled state dict, the pickled list of
/// storage keys, then each storage as an int64 element count and its raw bytes) — or a safetensors file,
/// into named float tensors. Only what a state dict needs is accepted: dicts/OrderedDicts of tensors (nested
/// dicts flatten to "a.b" names), tensors rebuilt by `torch._utils._rebuild_tensor_v2`/`_rebuild_parameter`
/// on float, double, half, bfloat16, int64, int32, int16, int8 or uint8 storages; every other global or call
/// in the pickle is refused with an error naming it (see `Unpickler`).
///
/// ```swift
/// let weights = try TorchCheckpoint.read(from: URL(fileURLWithPath: "pt_inception-2015-12-05-6726825d.pth"))
/// let w = weights["Conv2d_1a_3x3.conv.weight"]!   // shape [32, 3, 3, 3]
/// ```
public enum TorchCheckpoint {
    public struct FormatError: UserFacingError {
        public let description: String
    }

    /// Storage types by their pickled class name: element width and the decoder of one element.
    static let storageTypes: [String: (width: Int, dtype: SafeTensors.DType)] = [
        "torch.FloatStorage": (4, .f32), "torch.DoubleStorage": (8, .f32), "torch.HalfStorage": (2, .f32),
        "torch.BFloat16Storage": (2, .f32), "torch.LongStorage": (8, .i64), "torch.IntStorage": (4, .i64),
        "torch.ShortStorage": (2, .i64), "torch.CharStorage": (1, .i64), "torch.ByteStorage": (1, .i64),
    ]
    static let rebuilders: Set<String> = ["torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict"]

    /// A storage named by a persistent id: its type, key and element count.
    final class StorageRef {
        let type: String, key: String, count: Int
        init(type: String, key: String, count: Int) { self.type = type; self.key = key; self.count = count }
    }

    /// A tensor as the pickle describes it: a view (offset, sizes, strides in elements) of a storage.
    final class TensorRef {
        let storage: StorageRef, offset: Int, shape: [Int], strides: [Int]
        init(storage: StorageRef, offset: Int, shape: [Int], strides: [Int]) {
            self.storage = storage; self.offset = offset; self.shape = shape; self.strides = strides
        }
    }

    public static func read(from url: URL) throws -> [String: SafeTensors.Entry] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FormatError(description: "\(url.path): cannot read the file") }
        return try decode([UInt8](data), file: url.path)
    }

    public static func decode(_ bytes: [UInt8], file: String) throws -> [String: SafeTensors.Entry] {
        if ZipArchive.looksLikeZip(bytes) { return try decodeZip(bytes, file: file) }
        if bytes.first == 0x80 { return try decodeLegacy(bytes, file: file) }
        if bytes.count >= 9, bytes[8] == 0x7B {   // an 8-byte length, then the JSON header's "{"
            do { return try SafeTensors.decode(Data(bytes), file: file) } catch { throw FormatError(description: "\(error)") }
        }
        throw FormatError(description: "\(file): not a PyTorch checkpoint (neither the zip nor the legacy torch.save format) nor a safetensors file")
    }

    static func decodeZip(_ bytes: [UInt8], file: String) throws -> [String: SafeTensors.Entry] {
        let zip = try ZipArchive(bytes: bytes, file: file)
        guard let pickleName = zip.entries.keys.filter({ $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }).min() else {
            throw FormatError(description: "\(file): a ZIP archive without data.pkl (not a torch.save file)")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        let (root, _, _) = try unpickle(Array(try zip.data(of: pickleName)), file: file, start: 0)
        return try tensors(root, file: file) { ref in
            Array(try zip.data(of: "\(prefix)data/\(ref.key)"))
        }
    }

    static func decodeLegacy(_ bytes: [UInt8], file: String) throws -> [String: SafeTensors.Entry] {
        func plain(_ start: Int) throws -> (Unpickler.Value, Int) {
            var p = Unpickler(bytes: bytes, file: file, start: start, allowedGlobals: [])
            do { return (try p.load(), p.position) } catch { throw FormatError(description: "\(error)") }
        }
        let (magic, p1) = try plain(0)
        // torch.serialization's MAGIC_NUMBER 0x1950a86a20f9469cfc6c, ten little-endian bytes
        guard case .bigInt(let m) = magic, m == [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19] else {
            throw FormatError(description: "\(file): not a legacy torch.save file (wrong magic number)")
        }
        let (version, p2) = try plain(p1)
        guard case .int(1001) = version else { throw FormatError(description: "\(file): legacy torch.save protocol \(version.summary), expected 1001") }
        let (_, p3) = try plain(p2)   // system info: little-endian and type sizes (the data below is read as little-endian)
        let (root, storages, p4) = try unpickle(bytes, file: file, start: p3)
        var pk = Unpickler(bytes: bytes, file: file, start: p4, allowedGlobals: [])
        let keysValue: Unpickler.Value
        do { keysValue = try pk.load() } catch { throw FormatError(description: "\(error)") }
        guard case .list(let keyList) = keysValue else { throw FormatError(description: "\(file): the storage key list is missing") }
        var offsets: [String: Int] = [:]
        var p = pk.position
        for k in keyList.items {
            guard case .string(let key) = k, let ref = storages[key] else { throw FormatError(description: "\(file): storage key \(k.summary) names no storage of the state dict") }
            guard p + 8 <= bytes.count else { throw FormatError(description: "\(file): truncated before storage \(key)") }
            let n = bytes[p..<(p + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let width = storageTypes[ref.type]!.width
            guard n == UInt64(ref.count), ref.count <= (bytes.count - p - 8) / width else {
                throw FormatError(description: "\(file): storage \(key) holds \(n) elements where the pickle says \(ref.count), or runs past the end")
            }
            offsets[key] = p + 8
            p += 8 + ref.count * width
        }
        return try tensors(root, file: file) { ref in
            guard let start = offsets[ref.key] else { throw FormatError(description: "\(file): storage \(ref.key) is not in the file") }
            return Array(bytes[start..<(start + ref.count * storageTypes[ref.type]!.width)])
        }
    }

    /// The state-dict pickle with PyTorch's storages and tensor rebuilders admitted; returns the value, the
    /// storages by key, and where the pickle ended.
    static func unpickle(_ bytes: [UInt8], file: String, start: Int) throws -> (Unpickler.Value, [String: StorageRef], Int) {
        var storages: [String: StorageRef] = [:]
        var p = Unpickler(bytes: bytes, file: file, start: start, allowedGlobals: rebuilders.union(storageTypes.keys))
        p.persistentLoad = { id in
            // ('storage', storage type, key, location, element count[, view metadata])
            guard case .tuple(let t) = id, t.count >= 5, case .string("storage") = t[0], case .global(let type) = t[1],
                  case .string(let key) = t[2], case .int(let count) = t[4], count >= 0, storageTypes[type] != nil else {
                throw Unpickler.FormatError(description: "a persistent id that is not a storage of a supported type")
            }
            if let known = storages[key] { return .object(known) }
            let ref = StorageRef(type: type, key: key, count: count)
            storages[key] = ref
            return .object(ref)
        }
        p.reduce = { name, args in
            switch name {
            case "collections.OrderedDict":
                guard args.isEmpty else { throw Unpickler.FormatError(description: "OrderedDict with arguments") }
                return .dict(Unpickler.Box([]))
            case "torch._utils._rebuild_parameter":
                guard let first = args.first, case .object(let t) = first, t is TensorRef else { throw Unpickler.FormatError(description: "_rebuild_parameter without a tensor") }
                return first
            case "torch._utils._rebuild_tensor_v2":
                guard args.count >= 4, case .object(let s) = args[0], let storage = s as? StorageRef, case .int(let offset) = args[1],
                      case .tuple(let size) = args[2], case .tuple(let stride) = args[3] else {
                    throw Unpickler.FormatError(description: "_rebuild_tensor_v2 with unexpected arguments")
                }
                let shape = try size.map { v -> Int in guard case .int(let i) = v, i >= 0 else { throw Unpickler.FormatError(description: "bad tensor size") }; return i }
                let strides = try stride.map { v -> Int in guard case .int(let i) = v, i >= 0 else { throw Unpickler.FormatError(description: "bad tensor stride") }; return i }
                guard shape.count == strides.count, offset >= 0 else { throw Unpickler.FormatError(description: "tensor sizes and strides differ in length") }
                // The largest element the view reads must lie inside the storage (and the arithmetic must not overflow).
                var last = offset, overflow = false, empty = false
                for (n, s) in zip(shape, strides) {
                    if n == 0 { empty = true }
                    let (m, o1) = (n - 1).multipliedReportingOverflow(by: s)
                    let (sum, o2) = last.addingReportingOverflow(max(m, 0))
                    overflow = overflow || o1 || o2; last = sum
                }
                guard !overflow, empty || last < storage.count else { throw Unpickler.FormatError(description: "tensor view outside its storage") }
                return .object(TensorRef(storage: storage, offset: offset, shape: shape, strides: strides))
            default:
                throw Unpickler.FormatError(description: "refuses to call \(name)")
            }
        }
        do {
            let v = try p.load()
            return (v, storages, p.position)
        } catch {
            throw FormatError(description: "\(error)")
        }
    }

    /// Flattens the state dict into named tensors, reading each storage once.
    static func tensors(_ root: Unpickler.Value, file: String, bytesOf: (StorageRef) throws -> [UInt8]) throws -> [String: SafeTensors.Entry] {
        var out: [String: SafeTensors.Entry] = [:]
        var cache: [String: [Float]] = [:]
        // A state dict nests a few levels (PyTorch's own: one); a forged one could nest deep enough to overflow the stack.
        func walk(_ v: Unpickler.Value, _ prefix: String, depth: Int = 0) throws {
            guard depth < 64 else { throw FormatError(description: "\(file): the state dict nests more than 64 levels deep") }
            switch v {
            case .dict(let d):
                for (k, value) in d.items {
                    guard case .string(let key) = k else { throw FormatError(description: "\(file): a state-dict key that is not a string") }
                    try walk(value, prefix.isEmpty ? key : "\(prefix).\(key)", depth: depth + 1)
                }
            case .object(let o):
                guard let t = o as? TensorRef else { throw FormatError(description: "\(file): '\(prefix)' is a storage, not a tensor") }
                let type = storageTypes[t.storage.type]!
                if cache[t.storage.key] == nil { cache[t.storage.key] = try elements(bytesOf(t.storage), type: t.storage.type, file: file) }
                let src = cache[t.storage.key]!
                guard src.count >= t.storage.count else {
                    throw FormatError(description: "\(file): storage \(t.storage.key) holds \(src.count) elements where the pickle says \(t.storage.count)")
                }
                let count = t.shape.reduce(1, *)
                var values = [Float](repeating: 0, count: count)
                var index = [Int](repeating: 0, count: t.shape.count)
                for i in 0..<count {
                    var at = t.offset
                    for (d, s) in zip(index, t.strides) { at += d * s }
                    values[i] = src[at]
                    var axis = t.shape.count - 1   // next index, last axis fastest
                    while axis >= 0 { index[axis] += 1; if index[axis] < t.shape[axis] { break }; index[axis] = 0; axis -= 1 }
                }
                out[prefix] = SafeTensors.Entry(dtype: type.dtype, shape: t.shape, values: values)
            case .none, .bool, .int, .float, .string:
                break   // metadata such as a "version" entry
            default:
                throw FormatError(description: "\(file): '\(prefix)' is neither a tensor nor a dict of tensors")
            }
        }
        try walk(root, "")
        guard !out.isEmpty else { throw FormatError(description: "\(file): no tensors in the state dict") }
        return out
    }

    /// A storage's elements as Float (integers converted; half and bfloat16 widened).
    static func elements(_ raw: [UInt8], type: String, file: String) throws -> [Float] {
        let width = storageTypes[type]!.width, n = raw.count / width
        return raw.withUnsafeBytes { p in
            (0..<n).map { i -> Float in
                let at = p.baseAddress! + i * width
                switch type {
                case "torch.FloatStorage": return Float(bitPattern: UInt32(littleEndian: at.loadUnaligned(as: UInt32.self)))
                case "torch.DoubleStorage": return Float(Double(bitPattern: UInt64(littleEndian: at.loadUnaligned(as: UInt64.self))))
                case "torch.HalfStorage": return halfToFloat(UInt16(littleEndian: at.loadUnaligned(as: UInt16.self)))
                case "torch.BFloat16Storage": return Float(bitPattern: UInt32(UInt16(littleEndian: at.loadUnaligned(as: UInt16.self))) << 16)
                case "torch.LongStorage": return Float(Int64(littleEndian: at.loadUnaligned(as: Int64.self)))
                case "torch.IntStorage": return Float(Int32(littleEndian: at.loadUnaligned(as: Int32.self)))
                case "torch.ShortStorage": return Float(Int16(littleEndian: at.loadUnaligned(as: Int16.self)))
                case "torch.CharStorage": return Float(at.load(as: Int8.self))
                default: return Float(at.load(as: UInt8.self))
                }
            }
        }
    }

    /// IEEE 754 binary16 → binary32.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31, exponent = Int((h >> 10) & 0x1f), mantissa = UInt32(h & 0x3ff)
        if exponent == 0 { return (sign != 0 ? -1 : 1) * Float(mantissa) * 0x1p-24 }   // zero and subnormals
        if exponent == 31 { return Float(bitPattern: sign | 0x7f80_0000 | mantissa << 13) }   // inf, NaN
        return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | mantissa << 13)
    }
}
