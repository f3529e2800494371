/// A strict reader of Python pickle streams (protocols 2–5), for the state dicts inside PyTorch `.pth` files.
///
/// A pickle is a program for a stack machine, and a general unpickler runs whatever it names (`GLOBAL os
/// system` then `REDUCE` is a shell command). This one builds plain values only — None, bools, ints,
/// floats, strings, bytes, tuples, lists, dicts — plus the few objects a state dict needs, which the caller
/// admits by name (`allowedGlobals`) and constructs (`reduce`); any other global or call is refused with an
/// error naming it. Persistent ids (PyTorch's storages) are handed to `persistentLoad`.
///
/// ```swift
/// var p = Unpickler(bytes: [UInt8](data), file: "model.pth", allowedGlobals: ["collections.OrderedDict"])
/// let value = try p.load()
/// ```
public struct Unpickler {
    public struct FormatError: UserFacingError {
        public let description: String
    }

    /// A list or dict object: shared, since later opcodes fill objects already on the stack or in the memo.
    public final class Box<T> {
        public var items: T
        init(_ items: T) { self.items = items }
    }

    public indirect enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
        /// An integer wider than 64 bits, as its little-endian two's-complement bytes (LONG1).
        case bigInt([UInt8])
        case tuple([Value]), list(Box<[Value]>), dict(Box<[(key: Value, value: Value)]>)
        /// A global the caller admitted, by "module.name".
        case global(String)
        /// Whatever the caller's `reduce` or `persistentLoad` made.
        case object(AnyObject)

        /// A short description for error messages that names a container by its kind and size only: a pickle can
        /// nest tuples tens of thousands deep, and Swift's own description of such a value recurses until the stack
        /// overflows (found by `fuzz/run`).
        public var summary: String {
            switch self {
            case .none: return "None"
            case .bool(let b): return b ? "True" : "False"
            case .int(let i): return "\(i)"
            case .float(let d): return "\(d)"
            case .string(let s): return s.count <= 60 ? "'\(s)'" : "'\(s.prefix(60))…'"
            case .bytes(let b): return "\(b.count) bytes"
            case .bigInt(let b): return "a \(b.count)-byte integer"
            case .tuple(let t): return "a tuple of \(t.count)"
            case .list(let l): return "a list of \(l.items.count)"
            case .dict(let d): return "a dict of \(d.items.count)"
            case .global(let g): return g
            case .object(let o): return "a \(type(of: o))"
            }
        }
    }

    public let file: String
    private let b: [UInt8]
    private(set) public var position: Int
    private let allowedGlobals: Set<String>
    /// Constructs `global(args)` for an admitted global (REDUCE, NEWOBJ); throws to refuse.
    public var reduce: (String, [Value]) throws -> Value = { name, _ in throw FormatError(description: "refuses to call \(name)") }
    /// Turns a persistent id (BINPERSID) into a value.
    public var persistentLoad: (Value) throws -> Value = { _ in throw FormatError(description: "unexpected persistent id") }

    public init(bytes: [UInt8], file: String, start: Int = 0, allowedGlobals: Set<String>) {
        b = bytes; self.file = file; position = start; self.allowedGlobals = allowedGlobals
    }

    private func fail(_ what: String) -> FormatError {
        FormatError(description: "\(file): pickle at byte \(position): \(what)")
    }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= b.count - position else { throw fail("truncated (wanted \(n) more bytes)") }
        defer { position += n }
        return b[position..<(position + n)]
    }

    private mutating func uint(_ n: Int) throws -> UInt64 {
        try take(n).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    private mutating func line() throws -> String {
        guard let end = b[position...].firstIndex(of: 0x0A) else { throw fail("unterminated line") }
        defer { position = end + 1 }
        return String(decoding: b[position..<end], as: UTF8.self)
    }

    private mutating func text(_ n: UInt64) throws -> String {
        guard n <= UInt64(b.count) else { throw fail("truncated string") }
        return String(decoding: try take(Int(n)), as: UTF8.self)
    }

    /// Runs the machine to STOP and returns the value on top of the stack.
    public mutating func load() throws -> Value {
        var stack: [Value] = [], marks: [Int] = [], memo: [Int: Value] = [:]
        func pop() throws -> Value {
            guard let v = stack.popLast() else { throw fail("stack underflow") }
            if let m = marks.last, m > stack.count { throw fail("stack underflow past a mark") }
            return v
        }
        func popMark() throws -> [Value] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("no mark") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }
        func memoIndex(_ i: UInt64) throws -> Int {
            guard i < UInt64(Int32.max) else { throw fail("memo index \(i) out of range") }
            return Int(i)
        }
        func setItems(_ pairs: [Value], into target: Value) throws {
            guard case .dict(let d) = target, pairs.count % 2 == 0 else { throw fail("SETITEMS on something other than a dict") }
            for i in stride(from: 0, to: pairs.count, by: 2) { d.items.append((pairs[i], pairs[i + 1])) }
        }
        while true {
            let op = try take(1).first!
            switch op {
            case 0x80: _ = try take(1)                                     // PROTO
            case 0x95: _ = try take(8)                                     // FRAME
            case 0x2E: return try pop()                                    // STOP
            case 0x28: marks.append(stack.count)                           // MARK
            case 0x4E: stack.append(.none)                                 // NONE
            case 0x88: stack.append(.bool(true))                           // NEWTRUE
            case 0x89: stack.append(.bool(false))                          // NEWFALSE
            case 0x4B: stack.append(.int(Int(try uint(1))))                // BININT1
            case 0x4D: stack.append(.int(Int(try uint(2))))                // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))   // BININT
            case 0x8A:                                                     // LONG1
                let n = Int(try uint(1))
                if n > 8 { stack.append(.bigInt(Array(try take(n)))); continue }
                let raw = try uint(n)
                let shift = UInt64(64 - 8 * n)
                stack.append(.int(n == 0 ? 0 : Int(Int64(bitPattern: raw << shift) >> Int64(shift))))
            case 0x47: stack.append(.float(Double(bitPattern: try take(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))   // BINFLOAT (big-endian)
            case 0x58: stack.append(.string(try text(try uint(4))))        // BINUNICODE
            case 0x8C: stack.append(.string(try text(try uint(1))))        // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(try uint(8))))        // BINUNICODE8
            case 0x55: stack.append(.string(try text(try uint(1))))        // SHORT_BINSTRING
            case 0x54: stack.append(.string(try text(try uint(4))))        // BINSTRING
            case 0x43: stack.append(.bytes(Array(try take(Int(try uint(1))))))   // SHORT_BINBYTES
            case 0x42:                                                     // BINBYTES
                let n = try uint(4)
                stack.append(.bytes(Array(try take(Int(n)))))
            case 0x29: stack.append(.tuple([]))                            // EMPTY_TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                   // TUPLE1
            case 0x86: let y = try pop(), x = try pop(); stack.append(.tuple([x, y]))            // TUPLE2
            case 0x87: let z = try pop(), y = try pop(), x = try pop(); stack.append(.tuple([x, y, z]))   // TUPLE3
            case 0x74: stack.append(.tuple(try popMark()))                 // TUPLE
            case 0x5D: stack.append(.list(Box([])))                        // EMPTY_LIST
            case 0x6C: stack.append(.list(Box(try popMark())))             // LIST
            case 0x7D: stack.append(.dict(Box([])))                        // EMPTY_DICT
            case 0x64:                                                     // DICT
                let items = try popMark(), d = Value.dict(Box([]))
                try setItems(items, into: d)
                stack.append(d)
            case 0x61:                                                     // APPEND
                let v = try pop()
                guard case .list(let l)? = stack.last else { throw fail("APPEND to something other than a list") }
                l.items.append(v)
            case 0x65:                                                     // APPENDS
                let vs = try popMark()
                guard case .list(let l)? = stack.last else { throw fail("APPENDS to something other than a list") }
                l.items += vs
            case 0x73:                                                     // SETITEM
                let v = try pop(), k = try pop()
                guard let top = stack.last else { throw fail("SETITEM without a dict") }
                try setItems([k, v], into: top)
            case 0x75:                                                     // SETITEMS
                let kv = try popMark()
                guard let top = stack.last else { throw fail("SETITEMS without a dict") }
                try setItems(kv, into: top)
            case 0x71: guard let v = stack.last else { throw fail("BINPUT on an empty stack") }; memo[try memoIndex(try uint(1))] = v
            case 0x72: guard let v = stack.last else { throw fail("LONG_BINPUT on an empty stack") }; memo[try memoIndex(try uint(4))] = v
            case 0x94: guard let v = stack.last else { throw fail("MEMOIZE on an empty stack") }; memo[memo.count] = v
            case 0x68, 0x6A:                                               // BINGET, LONG_BINGET
                let i = try memoIndex(try uint(op == 0x68 ? 1 : 4))
                guard let v = memo[i] else { throw fail("memo entry \(i) missing") }
                stack.append(v)
            case 0x63:                                                     // GLOBAL
                let name = "\(try line()).\(try line())"
                guard allowedGlobals.contains(name) else { throw fail("refuses the global \(name) (only \(allowedGlobals.sorted().joined(separator: ", ")))") }
                stack.append(.global(name))
            case 0x93:                                                     // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else { throw fail("STACK_GLOBAL needs two strings") }
                guard allowedGlobals.contains("\(module).\(name)") else { throw fail("refuses the global \(module).\(name)") }
                stack.append(.global("\(module).\(name)"))
            case 0x52, 0x81:                                               // REDUCE, NEWOBJ
                guard case .tuple(let args) = try pop(), case .global(let name) = try pop() else { throw fail("REDUCE needs a global and a tuple") }
                do { stack.append(try reduce(name, args)) } catch let e as FormatError { throw fail(e.description) }
            case 0x62:                                                     // BUILD: object state (OrderedDict's _metadata) is dropped
                _ = try pop()
                guard !stack.isEmpty else { throw fail("BUILD without an object") }
            case 0x51:                                                     // BINPERSID
                let id = try pop()
                do { stack.append(try persistentLoad(id)) } catch let e as FormatError { throw fail(e.description) }
            default:
                throw fail(String(format: "unsupported opcode 0x%02x", op))
            }
        }
    }
}
