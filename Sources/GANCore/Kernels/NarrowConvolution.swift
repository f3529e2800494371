import CNarrowConvolution
import Foundation

/// Direct kernels for the convolutions whose result has only a few channels — the colour channels of an image:
/// the image gradient of a discriminator's first convolution (`Conv2d` backward-data with ≤ 3 input channels,
/// stride 1) and a generator's last transposed convolution (`ConvTranspose2d` forward with ≤ 3 output channels,
/// by output phases). As GEMMs these have a dimension of 3 (OpenBLAS and oneDNN both ran them at 44–88 GFLOP/s
/// on two cores); here each output value is a dot product over (channel, tap) done 8 channels per vector, with
/// the input in a channel-blocked layout ([channels/8][height][width][8], oneDNN's nChw8c).
///
/// The vector kernel (AVX2 + FMA, in the C target `CNarrowConvolution`, picked at run time) runs where the CPU
/// has it; elsewhere the layers keep their GEMM paths. `KernelSettings.narrow` switches it (`CIFAR_GAN_NARROW=0`).
///
/// ```swift
/// let onThisCPU = NarrowConvolution.available
/// ```
public enum NarrowConvolution {
    /// Whether this CPU runs the vector kernel.
    public static let available: Bool = narrow_convolution_vectorized() != 0

    /// Whether a layer with this many result channels (and reduced channels, a multiple of 8) takes the kernel.
    static func applies(resultChannels: Int, reducedChannels: Int) -> Bool {
        KernelSettings.narrow && available && resultChannels <= 3 && reducedChannels % 8 == 0
    }
}

/// One image [C][H][W] → [C/8][H + 2·pad][W + 2·pad][8] (C a multiple of 8), with a border of `pad` zero pixels.
@inline(__always)
func blockChannels(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int,
                   pad: Int = 0) {
    narrow_convolution_block_channels(src, Int32(channels), Int32(height), Int32(width), Int32(pad), dst)
}

/// For each output pixel (i, j) of a grid, the dot products over (channel block, tap) of a blocked image:
/// out[o·outPlane + i·outRow + j·outColumn] = Σ in[cb][i + offsetY + a][j + offsetX + b][l] · weight[cb][a][b][l/8][o][l%8].
/// See `narrow_convolution` in the C target.
@inline(__always)
func narrowConvolution(_ image: UnsafePointer<Float>, channels: Int, block: Int, height: Int, width: Int,
                       weight: UnsafePointer<Float>, outs: Int, kernel: Int, offsetY: Int, offsetX: Int,
                       out: UnsafeMutablePointer<Float>, outHeight: Int, outWidth: Int,
                       outPlane: Int, outRow: Int, outColumn: Int) {
    narrow_convolution(image, Int32(channels / block), Int32(block), Int32(height), Int32(width), weight, Int32(outs),
                       Int32(kernel), Int32(offsetY), Int32(offsetX), out, Int32(outHeight), Int32(outWidth),
                       outPlane, outRow, outColumn)
}

/// The kernel's weight layout for one tap: [block/8][outs][8] — entry (l, o) at ((l / 8)·outs + o)·8 + l % 8.
@inline(__always)
func narrowWeightIndex(channelInBlock l: Int, out o: Int, outs: Int) -> Int {
    ((l / 8) * outs + o) * 8 + l % 8
}

/// Where W(c, a, b, o) — reduced channel c, tap (a, b) of a k×k kernel, output o — sits in the kernel's whole weight
/// layout [channels/block][k][k][block/8][outs][8].
@inline(__always)
func narrowWeightOffset(channel c: Int, block: Int, tap a: Int, _ b: Int, kernel k: Int, out o: Int, outs: Int) -> Int {
    (((c / block) * k + a) * k + b) * block * outs + narrowWeightIndex(channelInBlock: c % block, out: o, outs: outs)
}

/// out[o][i] += bias[o] over `outs` planes of `plane` values (the kernel leaves the bias to its callers).
@inline(__always)
func addNarrowBias(_ bias: UnsafePointer<Float>?, to out: UnsafeMutablePointer<Float>, outs: Int, plane: Int) {
    guard let bias else { return }
    for o in 0..<outs { let p = out + o * plane, b = bias[o]; for i in 0..<plane { p[i] += b } }
}
