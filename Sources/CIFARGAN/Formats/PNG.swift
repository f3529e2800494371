import CZlib
import GANCore
import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (r, g, b).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width; self.height = height; self.pixels = pixels
    }
}

public struct PNGError: UserFacingError {
    public let description: String
    init(_ file: String, _ what: String) { description = "\(file): \(what)" }
}

/// Reading and writing PNG files with zlib: writes 8-bit RGB; reads 8-bit (and 16-bit) grey, grey+alpha,
/// RGB, RGBA and palette images, non-interlaced, which covers what image tools save for small datasets.
///
/// ```swift
/// try PNG.write(image, to: url)
/// let back = try PNG.read(from: url)
/// ```
public enum PNG {
    static let signature: [UInt8] = [137, 80, 78, 71, 13, 10, 26, 10]

    public static func encode(_ image: RGBImage) -> Data {
        var raw = [UInt8]()
        raw.reserveCapacity((image.width * 3 + 1) * image.height)
        for y in 0..<image.height {
            raw.append(0)  // filter: none
            raw.append(contentsOf: image.pixels[(y * image.width * 3)..<((y + 1) * image.width * 3)])
        }
        var out = Data(signature)
        var ihdr = Data()
        ihdr.appendBigEndian(UInt32(image.width)); ihdr.appendBigEndian(UInt32(image.height))
        ihdr.append(contentsOf: [8, 2, 0, 0, 0])  // 8 bits, RGB, deflate, adaptive filters, no interlace
        appendChunk(&out, "IHDR", ihdr)
        appendChunk(&out, "IDAT", deflate(raw))
        appendChunk(&out, "IEND", Data())
        return out
    }

    public static func write(_ image: RGBImage, to url: URL) throws {
        try writeAtomically(encode(image), to: url)
    }

    public static func read(from url: URL) throws -> RGBImage {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw PNGError(url.path, "cannot read the file") }
        return try decode(data, file: url.path)
    }

    public static func decode(_ data: Data, file: String = "<memory>") throws -> RGBImage {
        let bytes = [UInt8](data)
        guard bytes.count > 8, Array(bytes[0..<8]) == signature else { throw PNGError(file, "not a PNG file (bad signature)") }
        var pos = 8
        var width = 0, height = 0, depth = 0, colorType = 0
        var palette: [UInt8] = []
        var idat = [UInt8]()
        while pos + 8 <= bytes.count {
            let length = Int(bytes.readBigEndian(pos)), type = String(decoding: bytes[(pos + 4)..<(pos + 8)], as: UTF8.self)
            guard length >= 0, pos + 12 + length <= bytes.count else { throw PNGError(file, "truncated PNG chunk \(type)") }
            let body = bytes[(pos + 8)..<(pos + 8 + length)]
            switch type {
            case "IHDR":
                guard length == 13 else { throw PNGError(file, "bad IHDR chunk") }
                width = Int(bytes.readBigEndian(pos + 8)); height = Int(bytes.readBigEndian(pos + 12))
                depth = Int(body[body.startIndex + 8]); colorType = Int(body[body.startIndex + 9])
                if body[body.startIndex + 12] != 0 { throw PNGError(file, "interlaced PNGs are not supported") }
            case "PLTE": palette = Array(body)
            case "IDAT": idat.append(contentsOf: body)
            case "IEND": pos = bytes.count
            default: break
            }
            pos += 12 + length
        }
        let channelsByType = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4]
        // Each side bounded before the product, which would otherwise overflow on a forged header.
        guard width > 0, height > 0, width <= 1 << 26, height <= 1 << 26, width * height <= 1 << 26,
              let channels = channelsByType[colorType] else {
            throw PNGError(file, "unsupported or missing PNG header (colour type \(colorType))")
        }
        guard depth == 8 || (depth == 16 && colorType != 3) else { throw PNGError(file, "unsupported PNG bit depth \(depth)") }
        let bpp = channels * depth / 8, stride = width * bpp
        guard let raw = inflate(idat, expected: (stride + 1) * height, limit: (stride + 1) * height), raw.count == (stride + 1) * height else {
            throw PNGError(file, "corrupt PNG image data")
        }
        // Undo the per-row filters.
        var img = [UInt8](repeating: 0, count: stride * height)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride
            for x in 0..<stride {
                let a = x >= bpp ? Int(img[dst + x - bpp]) : 0
                let b = y > 0 ? Int(img[dst - stride + x]) : 0
                let c = (x >= bpp && y > 0) ? Int(img[dst - stride + x - bpp]) : 0
                let v = Int(raw[src + x])
                let pred: Int
                switch filter {
                case 0: pred = 0
                case 1: pred = a
                case 2: pred = b
                case 3: pred = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c)
                default: throw PNGError(file, "corrupt PNG row filter \(filter)")
                }
                img[dst + x] = UInt8((v + pred) & 0xFF)
            }
        }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            func sample(_ ch: Int) -> UInt8 { img[i * bpp + ch * depth / 8] }  // 16-bit: the high byte
            switch colorType {
            case 0, 4: let g = sample(0); rgb[3 * i] = g; rgb[3 * i + 1] = g; rgb[3 * i + 2] = g
            case 3:
                let k = Int(img[i]) * 3
                guard k + 2 < palette.count else { throw PNGError(file, "PNG palette index out of range") }
                rgb[3 * i] = palette[k]; rgb[3 * i + 1] = palette[k + 1]; rgb[3 * i + 2] = palette[k + 2]
            default: rgb[3 * i] = sample(0); rgb[3 * i + 1] = sample(1); rgb[3 * i + 2] = sample(2)
            }
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }

    static func appendChunk(_ out: inout Data, _ type: String, _ body: Data) {
        out.appendBigEndian(UInt32(body.count))
        var crcInput = Data(type.utf8); crcInput.append(body)
        out.append(crcInput)
        let crc = crcInput.withUnsafeBytes { crc32(0, $0.bindMemory(to: Bytef.self).baseAddress, uInt($0.count)) }
        out.appendBigEndian(UInt32(crc))
    }

    static func deflate(_ input: [UInt8]) -> Data {
        var destLen = compressBound(uLong(input.count))
        var out = [UInt8](repeating: 0, count: Int(destLen))
        let rc = compress2(&out, &destLen, input, uLong(input.count), 6)
        precondition(rc == Z_OK, "zlib compress2 failed (\(rc))")
        return Data(out[0..<Int(destLen)])
    }

    /// Inflates a zlib stream (windowBits 15), with `gzip` a gzip member, with `raw` a bare deflate stream (ZIP
    /// entries); nil when damaged, or when it would exceed `limit` bytes (a bomb must not exhaust memory).
    static func inflate(_ input: [UInt8], expected: Int, gzip: Bool = false, raw: Bool = false, limit: Int = .max) -> [UInt8]? {
        var stream = z_stream()
        let windowBits: Int32 = raw ? -15 : gzip ? 15 + 16 : 15
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: max(expected, 1024))
        var produced = 0
        var input = input
        return input.withUnsafeMutableBufferPointer { inBuf -> [UInt8]? in
            stream.next_in = inBuf.baseAddress
            stream.avail_in = uInt(inBuf.count)
            while true {
                if produced == out.count {
                    if out.count >= limit { return nil }
                    out.append(contentsOf: [UInt8](repeating: 0, count: min(out.count, limit - out.count)))
                }
                let rc: Int32 = out.withUnsafeMutableBufferPointer { o in
                    stream.next_out = o.baseAddress! + produced
                    stream.avail_out = uInt(o.count - produced)
                    let rc = CZlib.inflate(&stream, Z_NO_FLUSH)
                    produced = o.count - Int(stream.avail_out)
                    return rc
                }
                if rc == Z_STREAM_END { return Array(out[0..<produced]) }
                if rc != Z_OK && rc != Z_BUF_ERROR { return nil }
                if rc == Z_BUF_ERROR && stream.avail_in == 0 { return nil }  // truncated input
            }
        }
    }
}

/// Tiles images into one grid image with a 2-pixel border.
public func imageGrid(_ images: [RGBImage], columns: Int) -> RGBImage {
    let w = images.first?.width ?? 32, h = images.first?.height ?? 32, pad = 2
    let rows = (images.count + columns - 1) / max(columns, 1)
    let gw = columns * (w + pad) + pad, gh = rows * (h + pad) + pad
    var pixels = [UInt8](repeating: 255, count: gw * gh * 3)
    for (k, img) in images.enumerated() {
        let ox = pad + (k % columns) * (w + pad), oy = pad + (k / columns) * (h + pad)
        for y in 0..<h { for x in 0..<w { for c in 0..<3 {
            pixels[((oy + y) * gw + ox + x) * 3 + c] = img.pixels[(y * w + x) * 3 + c]
        } } }
    }
    return RGBImage(width: gw, height: gh, pixels: pixels)
}

extension Data {
    mutating func appendBigEndian(_ v: UInt32) { append(contentsOf: [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]) }
}

extension Array where Element == UInt8 {
    func readBigEndian(_ i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
}
