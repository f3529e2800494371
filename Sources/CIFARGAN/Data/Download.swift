import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GANCore

/// Fetches the official CIFAR-10 binary archive, checks its published MD5, and unpacks the batch files.
///
/// ```swift
/// try CIFARDownload.fetch(into: Locations.cacheFolder) { done, total in … }
/// ```
public enum CIFARDownload {
    public static let officialURL = URL(string: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")!
    public static let officialMD5 = "c32a1d4ab5d03f1284b67883e8d87530"
    public static let officialSize = 170_052_171

    /// Downloads `url`, verifies `md5`, and extracts the files of the archive's `cifar-10-batches-bin/` into `folder`. Nothing is left half-written: files are extracted
    /// to temporary names and renamed; the archive is removed afterwards.
    public static func fetch(url: URL = officialURL, md5: String = officialMD5, into folder: URL,
                             progress: @escaping @Sendable (Int64, Int64) -> Void = { _, _ in }) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let archive = folder.appendingPathComponent(".cifar-10-binary.tar.gz.part-\(getpid())")
        defer { try? FileManager.default.removeItem(at: archive) }
        try HTTPDownloader.download(url, to: archive, progress: progress)
        let data = try Data(contentsOf: archive)
        let digest = MD5.hex(data)
        guard digest == md5.lowercased() else {
            throw DataError("\(url.absoluteString): checksum mismatch: MD5 \(digest), expected \(md5) (download corrupted or the wrong file)")
        }
        guard let tar = PNG.inflate([UInt8](data), expected: data.count * 2, gzip: true) else {
            throw DataError("\(url.absoluteString): not a valid gzip archive")
        }
        let target = folder
        var extracted = 0
        for (name, body) in try Tar.entries(tar, source: url.absoluteString) {
            let parts = name.split(separator: "/")
            guard parts.count == 2, parts[0] == "cifar-10-batches-bin", !parts[1].hasPrefix(".") else { continue }
            try writeAtomically(Data(body), to: target.appendingPathComponent(String(parts[1])))
            extracted += 1
        }
        guard CIFAR10.isPresent(in: target, split: .train) else {
            throw DataError("\(url.absoluteString): the archive holds no cifar-10-batches-bin/data_batch_*.bin files")
        }
    }
}

/// A minimal reader of ustar archives: regular files only.
enum Tar {
    static func entries(_ bytes: [UInt8], source: String) throws -> [(String, ArraySlice<UInt8>)] {
        var out: [(String, ArraySlice<UInt8>)] = []
        var pos = 0
        while pos + 512 <= bytes.count {
            let header = bytes[pos..<(pos + 512)]
            if header.allSatisfy({ $0 == 0 }) { break }
            func field(_ a: Int, _ n: Int) -> String {
                let slice = bytes[(pos + a)..<(pos + a + n)]
                return String(decoding: slice.prefix { $0 != 0 }, as: UTF8.self)
            }
            let sizeText = field(124, 12).trimmingCharacters(in: .whitespaces)
            guard let size = Int(sizeText, radix: 8) else { throw DataError("\(source): corrupt tar header (size '\(sizeText)')") }
            let prefix = field(345, 155), name = prefix.isEmpty ? field(0, 100) : prefix + "/" + field(0, 100)
            let type = bytes[pos + 156]
            let start = pos + 512
            guard start + size <= bytes.count else { throw DataError("\(source): truncated tar archive at \(name)") }
            if type == UInt8(ascii: "0") || type == 0 { out.append((name, bytes[start..<(start + size)])) }
            pos = start + (size + 511) / 512 * 512
        }
        return out
    }
}

/// Streams an HTTP(S) download to a file, reporting (bytes so far, expected total or −1).
final class HTTPDownloader: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let handle: FileHandle
    private let progress: @Sendable (Int64, Int64) -> Void
    private let done = DispatchSemaphore(value: 0)
    private var received: Int64 = 0, expected: Int64 = -1
    private var failure: Error?
    private let url: URL

    private init(url: URL, handle: FileHandle, progress: @escaping @Sendable (Int64, Int64) -> Void) {
        self.url = url; self.handle = handle; self.progress = progress
    }

    static func download(_ url: URL, to file: URL, progress: @escaping @Sendable (Int64, Int64) -> Void) throws {
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        let delegate = HTTPDownloader(url: url, handle: handle, progress: progress)
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 60
        let session = URLSession(configuration: config, delegate: delegate, delegateQueue: nil)
        session.dataTask(with: url).resume()
        delegate.done.wait()
        session.finishTasksAndInvalidate()
        if let failure = delegate.failure { throw failure }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
            failure = DataError("\(url.absoluteString): HTTP status \(http.statusCode)")
            completionHandler(.cancel)
            return
        }
        expected = response.expectedContentLength
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        do { try handle.write(contentsOf: data) } catch { failure = error; dataTask.cancel(); return }
        received += Int64(data.count)
        progress(received, expected)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if failure == nil, let error { failure = DataError("\(url.absoluteString): download failed: \(error.localizedDescription)") }
        done.signal()
    }
}
