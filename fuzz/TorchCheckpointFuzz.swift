// libFuzzer entry point for the readers of untrusted weight files: TorchCheckpoint (legacy and zip .pth, and
// safetensors through it), which covers Unpickler, ZipArchive and SafeTensors. Built by fuzz/run (swiftc
// -sanitize=fuzzer,address over these Swift files, without the rest of the package).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorchCheckpoint(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = [UInt8](UnsafeRawBufferPointer(start: start, count: count))
    _ = try? TorchCheckpoint.decode(bytes, file: "fuzz.pth")
    return 0
}
