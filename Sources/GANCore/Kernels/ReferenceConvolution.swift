import CTranspose
import Foundation

// MARK: - Naive reference kernels (direct loops), used by the tests to check the fast paths.

/// Direct 2-d convolution: y[n,o,oy,ox] = b[o] + Σ w[o,c,ky,kx]·x[n,c,oy·s−p+ky, ox·s−p+kx].
public func naiveConv2d(x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int) -> Tensor {
    let N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    let O = weight.shape[0], k = weight.shape[2]
    let OH = (H + 2 * padding - k) / stride + 1, OW = (W + 2 * padding - k) / stride + 1
    let y = Tensor(shape: [N, O, OH, OW])
    for n in 0..<N { for o in 0..<O { for oy in 0..<OH { for ox in 0..<OW {
        var s = Double(bias?[o] ?? 0)
        for c in 0..<C { for ky in 0..<k { for kx in 0..<k {
            let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
            if iy >= 0 && iy < H && ix >= 0 && ix < W {
                s += Double(weight[((o * C + c) * k + ky) * k + kx]) * Double(x[((n * C + c) * H + iy) * W + ix])
            }
        } } }
        y[((n * O + o) * OH + oy) * OW + ox] = Float(s)
    } } } }
    return y
}

/// Direct transposed convolution: each input pixel scatters w[c,o,:,:]·x into the output.
public func naiveConvTranspose2d(x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int, outputPadding: Int) -> Tensor {
    let N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    let O = weight.shape[1], k = weight.shape[2]
    let OH = (H - 1) * stride - 2 * padding + k + outputPadding, OW = (W - 1) * stride - 2 * padding + k + outputPadding
    var acc = [Double](repeating: 0, count: N * O * OH * OW)
    for n in 0..<N { for c in 0..<C { for iy in 0..<H { for ix in 0..<W {
        let v = Double(x[((n * C + c) * H + iy) * W + ix])
        for o in 0..<O { for ky in 0..<k { for kx in 0..<k {
            let oy = iy * stride - padding + ky, ox = ix * stride - padding + kx
            if oy >= 0 && oy < OH && ox >= 0 && ox < OW {
                acc[((n * O + o) * OH + oy) * OW + ox] += v * Double(weight[((c * O + o) * k + ky) * k + kx])
            }
        } } }
    } } } }
    let y = Tensor(shape: [N, O, OH, OW])
    for i in 0..<acc.count { y[i] = Float(acc[i] + Double(bias?[(i / (OH * OW)) % O] ?? 0)) }
    return y
}
