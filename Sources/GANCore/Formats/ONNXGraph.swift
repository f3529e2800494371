import Foundation

/// An ONNX model (opset 17, IR version 8) of a network in inference form, written with `ProtobufWriter`
/// (field numbers from onnx/onnx.proto). `add(_:input:path:)` translates the generator's layers: batch norm
/// as BatchNormalization on its running statistics, conditional batch norm as that plus a per-class scale
/// and shift gathered by the `class` input, transposed convolutions with explicit pads and output_padding,
/// nearest upsampling as Resize (asymmetric, floor: PyTorch's nearest), spectral norm folded into the weight.
/// Initialisers are named after the state-dict keys, so a reader can match them with the checkpoint.
///
/// ```swift
/// let graph = ONNXGraph(name: "generator")
/// let z = graph.input("z", shape: [nil, 128])
/// let y = try graph.add(generator, input: z)
/// graph.output(y, as: "images", shape: [nil, 3, 32, 32])
/// try graph.serialized().write(to: url, options: .atomic)
/// ```
public final class ONNXGraph {
    public struct UnsupportedLayer: UserFacingError {
        public let description: String
    }

    public enum Attribute {
        case int(Int), ints([Int]), float(Float), string(String)
    }

    /// Element types of TensorProto.DataType.
    public enum ElementType: Int { case float = 1, int64 = 7 }

    public let name: String
    /// The class input of a conditional model (made by the first conditional layer met).
    public private(set) var classInput: String?
    private var nodes: [ProtobufWriter] = []
    private var initializers: [ProtobufWriter] = []
    private var inputs: [ProtobufWriter] = [], outputs: [ProtobufWriter] = []
    private var names = Set<String>()
    private var counter = 0

    public init(name: String) { self.name = name }

    // MARK: - Graph construction

    /// A graph input; nil dimensions are the batch, named "N".
    public func input(_ name: String, shape: [Int?], type: ElementType = .float) -> String {
        names.insert(name)
        inputs.append(Self.valueInfo(name, shape: shape, type: type))
        return name
    }

    /// Names `value` as a graph output (through an Identity node when it has another name).
    public func output(_ value: String, as name: String, shape: [Int?]) {
        let out = value == name ? value : node("Identity", [value], output: name)
        outputs.append(Self.valueInfo(out, shape: shape, type: .float))
    }

    /// A float initialiser (a constant tensor), stored as little-endian raw data.
    public func initializer(_ name: String, shape: [Int], values: [Float]) -> String {
        precondition(shape.reduce(1, *) == values.count, "ONNX initializer \(name): \(values.count) values for shape \(shape)")
        let unique = uniqueName(name)
        var t = ProtobufWriter()
        t.packedVarints(1, shape)
        t.varint(2, ElementType.float.rawValue)
        t.string(8, unique)
        var raw: [UInt8] = []
        raw.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        t.bytes(9, raw)
        initializers.append(t)
        return unique
    }

    /// An int64 initialiser (shapes for Reshape).
    public func initializer(_ name: String, int64 values: [Int]) -> String {
        let unique = uniqueName(name)
        var t = ProtobufWriter()
        t.packedVarints(1, [values.count])
        t.varint(2, ElementType.int64.rawValue)
        t.string(8, unique)
        var raw: [UInt8] = []
        for v in values { withUnsafeBytes(of: Int64(v).littleEndian) { raw.append(contentsOf: $0) } }
        t.bytes(9, raw)
        initializers.append(t)
        return unique
    }

    /// A node of `op` over `inputs` ("" for an omitted optional input); returns its (single) output's name.
    @discardableResult
    public func node(_ op: String, _ inputs: [String], _ attributes: [(String, Attribute)] = [], output: String? = nil) -> String {
        counter += 1
        let out = output.map(uniqueName) ?? uniqueName("\(op.lowercased())_\(counter)")
        var n = ProtobufWriter()
        for i in inputs { n.string(1, i) }
        n.string(2, out)
        n.string(3, "\(op)_\(counter)")
        n.string(4, op)
        for (key, value) in attributes {
            n.message(5) { a in
                a.string(1, key)
                switch value {
                case .float(let f): a.float(2, f); a.varint(20, 1)
                case .int(let i): a.varint(3, i); a.varint(20, 2)
                case .string(let s): a.string(4, s); a.varint(20, 3)
                case .ints(let v): a.packedVarints(8, v); a.varint(20, 7)
                }
            }
        }
        nodes.append(n)
        return out
    }

    // MARK: - Layers

    /// Appends `layer` in inference form to the graph, reading `input`; returns the output's name.
    /// `path` prefixes the initialisers' names (the layer's state-dict prefix).
    public func add(_ layer: Layer, input x: String, path: String = "") throws -> String {
        let p = path.isEmpty ? "" : path + "."
        switch layer {
        case let seq as Sequential:
            var y = x
            for (i, l) in seq.layers.enumerated() { y = try add(l, input: y, path: p + String(i)) }
            return y
        case let linear as Linear:
            return gemm(x, weight: linear.weight.value, bias: linear.bias?.value, path: p)
        case let reshape as Reshape:
            return node("Reshape", [x, initializer(p + "shape", int64: [-1] + reshape.shape)])
        case let bn as BatchNorm:
            return batchNorm(x, bn, path: p, scale: bn.weight.value.toArray(), shift: bn.bias.value.toArray())
        case let cbn as ConditionalBatchNorm:
            // x̂ by the class-free batch norm, then γ[class]·x̂ + β[class] with γ, β gathered per image.
            let C = cbn.numFeatures
            let h = batchNorm(x, cbn.norm, path: p + "bn.", scale: Array(repeating: 1, count: C), shift: Array(repeating: 0, count: C))
            let classes = classInput ?? input("class", shape: [nil], type: .int64)
            classInput = classes
            let perImage = initializer(p + "per_image_shape", int64: [-1, C, 1, 1])
            let gamma = node("Reshape", [node("Gather", [initializer(p + "weight", shape: cbn.weight.value.shape, values: cbn.weight.value.toArray()), classes],
                                              [("axis", .int(0))]), perImage])
            let beta = node("Reshape", [node("Gather", [initializer(p + "bias", shape: cbn.bias.value.shape, values: cbn.bias.value.toArray()), classes],
                                             [("axis", .int(0))]), perImage])
            return node("Add", [node("Mul", [h, gamma]), beta])
        case let conv as Conv2d:
            return conv2d(x, conv, weight: conv.weight.value, path: p)
        case let conv as ConvTranspose2d:
            return convolution("ConvTranspose", x, weight: conv.weight.value, bias: conv.bias?.value, path: p,
                               [("kernel_shape", .ints([conv.kernelSize, conv.kernelSize])), ("strides", .ints([conv.stride, conv.stride])),
                                ("pads", .ints(Array(repeating: conv.padding, count: 4))),
                                ("output_padding", .ints([conv.outputPadding, conv.outputPadding]))])
        case let sn as SpectralNorm:
            // Inference form of torch.nn.utils.spectral_norm: W / σ with σ = uᵀ W v from the stored vectors.
            let folded = sn.normalizedWeight()
            switch sn.inner {
            case let conv as Conv2d: return conv2d(x, conv, weight: folded, path: p)
            case let linear as Linear: return gemm(x, weight: folded, bias: linear.bias?.value, path: p)
            default:
                throw UnsupportedLayer(description: "ONNX export: spectral norm around \(type(of: sn.inner)) at '\(path)' is not supported")
            }
        case is Upsample2x:
            return node("Resize", [x, "", initializer(p + "scales", shape: [4], values: [1, 1, 2, 2])],
                        [("mode", .string("nearest")), ("coordinate_transformation_mode", .string("asymmetric")),
                         ("nearest_mode", .string("floor"))])
        case let block as ResidualBlock:
            let a = try add(block.main, input: x, path: p + "main")
            let b = try block.shortcut.map { try add($0, input: x, path: p + "shortcut") } ?? x
            let sum = node("Add", [a, b])
            return block.hasFinalReLU ? node("Relu", [sum]) : sum
        case is ReLU:
            return node("Relu", [x])
        case let act as LeakyReLU:
            return node("LeakyRelu", [x], [("alpha", .float(act.negativeSlope))])
        case is Tanh:
            return node("Tanh", [x])
        case is Sigmoid:
            return node("Sigmoid", [x])
        default:
            throw UnsupportedLayer(description: "ONNX export: no translation for \(type(of: layer)) at '\(path)'")
        }
    }

    private func batchNorm(_ x: String, _ bn: BatchNorm, path p: String, scale: [Float], shift: [Float]) -> String {
        let C = bn.numFeatures
        return node("BatchNormalization", [x, initializer(p + "weight", shape: [C], values: scale), initializer(p + "bias", shape: [C], values: shift),
                                           initializer(p + "running_mean", shape: [C], values: bn.runningMean.toArray()),
                                           initializer(p + "running_var", shape: [C], values: bn.runningVar.toArray())],
                    [("epsilon", .float(bn.eps))])
    }

    /// y = x Wᵀ + b, W [out, in].
    private func gemm(_ x: String, weight: Tensor, bias: Tensor?, path p: String) -> String {
        let w = initializer(p + "weight", shape: weight.shape, values: weight.toArray())
        let b = bias.map { initializer(p + "bias", shape: $0.shape, values: $0.toArray()) }
        return node("Gemm", [x, w] + (b.map { [$0] } ?? []), [("transB", .int(1))])
    }

    /// `conv`'s geometry with `weight` (its own, or spectral norm's W/σ).
    private func conv2d(_ x: String, _ conv: Conv2d, weight: Tensor, path p: String) -> String {
        convolution("Conv", x, weight: weight, bias: conv.bias?.value, path: p,
                    [("kernel_shape", .ints([conv.kernelSize, conv.kernelSize])), ("strides", .ints([conv.stride, conv.stride])),
                     ("pads", .ints(Array(repeating: conv.padding, count: 4)))])
    }

    private func convolution(_ op: String, _ x: String, weight: Tensor, bias: Tensor?, path p: String,
                             _ attributes: [(String, Attribute)]) -> String {
        let w = initializer(p + "weight", shape: weight.shape, values: weight.toArray())
        let b = bias.map { initializer(p + "bias", shape: $0.shape, values: $0.toArray()) }
        return node(op, [x, w] + (b.map { [$0] } ?? []), attributes)
    }

    // MARK: - Serialisation

    /// The ModelProto's bytes.
    public func serialized(producer: String = "cifar-gan", docString: String = "") -> Data {
        var m = ProtobufWriter()
        m.varint(1, 8)                                   // ir_version 8 (ONNX 1.10+, opset ≤ 17)
        m.string(2, producer)
        m.message(8) { $0.string(1, ""); $0.varint(2, 17) }   // opset_import: the default domain, opset 17
        m.message(7) { g in
            for n in nodes { g.bytes(1, n.bytes) }
            g.string(2, name)
            for t in initializers { g.bytes(5, t.bytes) }
            if !docString.isEmpty { g.string(10, docString) }
            for i in inputs { g.bytes(11, i.bytes) }
            for o in outputs { g.bytes(12, o.bytes) }
        }
        return Data(m.bytes)
    }

    private static func valueInfo(_ name: String, shape: [Int?], type: ElementType) -> ProtobufWriter {
        var v = ProtobufWriter()
        v.string(1, name)
        v.message(2) { t in                               // TypeProto
            t.message(1) { tensor in                      // .tensor_type
                tensor.varint(1, type.rawValue)
                tensor.message(2) { s in                  // TensorShapeProto
                    for d in shape { s.message(1) { dim in if let d { dim.varint(1, d) } else { dim.string(2, "N") } } }
                }
            }
        }
        return v
    }

    private func uniqueName(_ base: String) -> String {
        var name = base, k = 1
        while names.contains(name) { k += 1; name = "\(base)_\(k)" }
        names.insert(name)
        return name
    }
}
