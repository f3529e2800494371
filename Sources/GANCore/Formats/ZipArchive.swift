import Foundation

/// A read-only view of a ZIP archive's stored (uncompressed) entries — the container of PyTorch's
/// `torch.save` format since 1.6 (`archive/data.pkl`, `archive/data/0`, …) and of numpy's `.npz`. Reads
/// the end-of-central-directory record, then each central-directory entry and its local header; every
/// offset and length is checked against the file, so a damaged archive gives an error, never a crash.
/// Deflated entries are listed but `data(of:)` refuses them.
///
/// ```swift
/// let zip = try ZipArchive(bytes: [UInt8](data), file: "model.pth")
/// let pickle = try zip.data(of: "archive/data.pkl")
/// ```
public struct ZipArchive {
    public struct FormatError: UserFacingError {
        public let description: String
    }

    public struct Entry {
        public let name: String
        public let method: Int
        public let compressedSize: Int
        public let size: Int
        let localHeader: Int
    }

    public let file: String
    public let entries: [String: Entry]
    private let b: [UInt8]

    /// Whether `bytes` start like a ZIP archive ("PK\u{3}\u{4}").
    public static func looksLikeZip(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) }

    public init(bytes: [UInt8], file: String) throws {
        b = bytes; self.file = file
        func fail(_ what: String) -> FormatError { FormatError(description: "\(file): not a valid ZIP archive: \(what)") }
        func u16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        // The end-of-central-directory record: the last "PK\5\6" within 22 + 65535 bytes of the end.
        guard bytes.count >= 22 else { throw fail("shorter than an end record") }
        var end = -1
        var i = bytes.count - 22
        while i >= max(0, bytes.count - 22 - 65535) {
            if bytes[i] == 0x50, bytes[i + 1] == 0x4B, bytes[i + 2] == 0x05, bytes[i + 3] == 0x06 { end = i; break }
            i -= 1
        }
        guard end >= 0 else { throw fail("no end-of-central-directory record") }
        let count = u16(end + 10), directorySize = u32(end + 12), directoryOffset = u32(end + 16)
        guard count != 0xFFFF, directoryOffset != 0xFFFF_FFFF else { throw fail("ZIP64 archives (over 4 GiB or 65535 entries) are not supported") }
        guard directoryOffset <= end, directorySize <= end - directoryOffset else { throw fail("central directory outside the file") }
        var entries: [String: Entry] = [:]
        var p = directoryOffset
        for _ in 0..<count {
            guard p + 46 <= end, u32(p) == 0x0201_4B50 else { throw fail("damaged central directory entry at byte \(p)") }
            let method = u16(p + 10), compressed = u32(p + 20), size = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32), local = u32(p + 42)
            guard p + 46 + nameLength <= end else { throw fail("entry name outside the directory") }
            let name = String(decoding: bytes[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            guard local + 30 <= bytes.count, u32(local) == 0x0403_4B50 else { throw fail("entry '\(name)': no local header at byte \(local)") }
            entries[name] = Entry(name: name, method: method, compressedSize: compressed, size: size, localHeader: local)
            p += 46 + nameLength + extraLength + commentLength
        }
        self.entries = entries
    }

    /// The bytes of a stored entry.
    public func data(of name: String) throws -> ArraySlice<UInt8> {
        let (e, bytes) = try compressedData(of: name)
        guard e.method == 0, e.size == e.compressedSize else {
            throw FormatError(description: "\(file): entry '\(name)': compressed (method \(e.method)); only stored entries are read here")
        }
        return bytes
    }

    /// An entry as it is in the archive (stored, or deflated for a caller with zlib to inflate).
    public func compressedData(of name: String) throws -> (entry: Entry, bytes: ArraySlice<UInt8>) {
        guard let e = entries[name] else { throw FormatError(description: "\(file): no entry '\(name)' in the archive") }
        let h = e.localHeader
        let nameLength = Int(b[h + 26]) | Int(b[h + 27]) << 8, extraLength = Int(b[h + 28]) | Int(b[h + 29]) << 8
        let start = h + 30 + nameLength + extraLength
        guard start <= b.count, e.compressedSize <= b.count - start else {
            throw FormatError(description: "\(file): entry '\(name)': data outside the file")
        }
        return (e, b[start..<(start + e.compressedSize)])
    }
}
