import CZlib
import Foundation
import GANCore

/// numpy's `.npz` archives of float arrays — the format of pytorch-fid's statistics files (`mu`, `sigma`,
/// written by `np.savez_compressed`). Reads stored or deflated entries holding `.npy` arrays of little-endian
/// float64 or float32 in C order (format versions 1–3); writes stored float64 entries, which `np.load` reads.
///
/// ```swift
/// try NumpyArchive.write(["mu": ([2048], mu), "sigma": ([2048, 2048], sigma)], to: url)
/// let stats = try NumpyArchive.read(from: url)   // ["mu": (shape, values), …]
/// ```
public enum NumpyArchive {
    public struct FormatError: UserFacingError {
        public let description: String
    }

    public static func read(from url: URL) throws -> [String: (shape: [Int], values: [Double])] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FormatError(description: "\(url.path): cannot read the file") }
        return try decode([UInt8](data), file: url.path)
    }

    public static func decode(_ bytes: [UInt8], file: String) throws -> [String: (shape: [Int], values: [Double])] {
        let zip: ZipArchive
        do { zip = try ZipArchive(bytes: bytes, file: file) } catch { throw FormatError(description: "\(file): not an .npz archive (\(error))") }
        var out: [String: (shape: [Int], values: [Double])] = [:]
        for name in zip.entries.keys.sorted() where name.hasSuffix(".npy") {
            let (entry, raw) = try zip.compressedData(of: name)
            let npy: [UInt8]
            switch entry.method {
            case 0: npy = Array(raw)
            case 8:
                // deflate expands at most ~1032:1; a larger stated size is a forged header, not an allocation to make
                guard entry.size <= raw.count * 1032 + 1024 else {
                    throw FormatError(description: "\(file): entry '\(name)' claims \(entry.size) bytes from \(raw.count) compressed ones")
                }
                guard let inflated = PNG.inflate(Array(raw), expected: entry.size, raw: true, limit: max(entry.size, 1)), inflated.count == entry.size else {
                    throw FormatError(description: "\(file): entry '\(name)' does not inflate to its \(entry.size) bytes")
                }
                npy = inflated
            default:
                throw FormatError(description: "\(file): entry '\(name)' uses compression method \(entry.method); numpy writes stored or deflated entries")
            }
            out[String(name.dropLast(4))] = try array(npy, file: "\(file): \(name)")
        }
        return out
    }

    /// One `.npy` array: magic, version, header length, a Python-literal header dict, then the data.
    static func array(_ b: [UInt8], file: String) throws -> (shape: [Int], values: [Double]) {
        func fail(_ what: String) -> FormatError { FormatError(description: "\(file): \(what)") }
        guard b.count >= 10, b.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) else { throw fail("not a .npy array") }
        let major = b[6]
        let (length, start): (Int, Int) = major == 1 ? (Int(b[8]) | Int(b[9]) << 8, 10)
            : b.count >= 12 ? (Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24, 12) : (-1, 0)
        guard (1...3).contains(major), length >= 0, length <= b.count - start else { throw fail("damaged .npy header") }
        let header = String(decoding: b[start..<(start + length)], as: UTF8.self)
        func field(_ key: String) -> Substring? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let descr = field("descr"), let order = field("fortran_order"), let shapeField = field("shape"),
              let open = shapeField.firstIndex(of: "("), let close = shapeField.firstIndex(of: ")") else {
            throw fail("the .npy header lacks descr, fortran_order or shape")
        }
        guard order.hasPrefix("False") else { throw fail("Fortran-ordered arrays are not supported") }
        let width: Int
        if descr.hasPrefix("'<f8'") { width = 8 } else if descr.hasPrefix("'<f4'") { width = 4 } else {
            throw fail("dtype \(descr.prefix(6)) is not little-endian float64 or float32")
        }
        let shape = try shapeField[shapeField.index(after: open)..<close].split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n >= 0 else { throw fail("bad shape \(shapeField[open...close])") }
            return n
        }
        var count = 1
        for n in shape { let (m, o) = count.multipliedReportingOverflow(by: n); guard !o else { throw fail("shape too large") }; count = m }
        let dataStart = start + length
        guard count <= (b.count - dataStart) / width else { throw fail("\(count) elements of shape \(shape) do not fit the \(b.count - dataStart) data bytes") }
        let values = b.withUnsafeBytes { p in
            (0..<count).map { i -> Double in
                let at = p.baseAddress! + dataStart + i * width
                return width == 8 ? Double(bitPattern: UInt64(littleEndian: at.loadUnaligned(as: UInt64.self)))
                    : Double(Float(bitPattern: UInt32(littleEndian: at.loadUnaligned(as: UInt32.self))))
            }
        }
        return (shape, values)
    }

    /// Writes float64 arrays as a stored `.npz` (entries `NAME.npy`, format 1.0), atomically.
    public static func write(_ arrays: [String: (shape: [Int], values: [Double])], to url: URL) throws {
        var zip: [UInt8] = [], directory: [UInt8] = []
        func le16(_ v: Int, _ into: inout [UInt8]) { into += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
        func le32(_ v: Int, _ into: inout [UInt8]) { le16(v & 0xffff, &into); le16(v >> 16 & 0xffff, &into) }
        for name in arrays.keys.sorted() {
            let (shape, values) = arrays[name]!
            precondition(shape.reduce(1, *) == values.count, "NumpyArchive: \(name) has \(values.count) values for shape \(shape)")
            let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
            var header = "{'descr': '<f8', 'fortran_order': False, 'shape': \(dims), }"
            while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }   // numpy aligns the data to 64 bytes
            header += "\n"
            var npy: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
            le16(header.utf8.count, &npy)
            npy += Array(header.utf8)
            npy.reserveCapacity(npy.count + values.count * 8)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { npy += $0 } }
            guard npy.count < 0xFFFF_FFFF, zip.count < 0xFFFF_FFFF else { throw FormatError(description: "\(url.path): over 4 GiB (ZIP64 is not written)") }
            let entryName = Array("\(name).npy".utf8)
            let crc = npy.withUnsafeBufferPointer { Int(crc32(0, $0.baseAddress, uInt($0.count))) }
            let offset = zip.count
            // local header: signature, version 20, flags 0, method 0 (stored), time, date, crc, sizes, name length, extra 0
            le32(0x0403_4B50, &zip); le16(20, &zip); le16(0, &zip); le16(0, &zip); le16(0, &zip); le16(0x21, &zip)
            le32(crc, &zip); le32(npy.count, &zip); le32(npy.count, &zip); le16(entryName.count, &zip); le16(0, &zip)
            zip += entryName
            zip += npy
            le32(0x0201_4B50, &directory); le16(20, &directory); le16(20, &directory); le16(0, &directory); le16(0, &directory)
            le16(0, &directory); le16(0x21, &directory); le32(crc, &directory); le32(npy.count, &directory); le32(npy.count, &directory)
            le16(entryName.count, &directory); le16(0, &directory); le16(0, &directory); le16(0, &directory); le16(0, &directory)
            le32(0, &directory); le32(offset, &directory)
            directory += entryName
        }
        let directoryOffset = zip.count
        zip += directory
        le32(0x0605_4B50, &zip); le16(0, &zip); le16(0, &zip); le16(arrays.count, &zip); le16(arrays.count, &zip)
        le32(directory.count, &zip); le32(directoryOffset, &zip); le16(0, &zip)
        try writeAtomically(Data(zip), to: url)
    }
}
