#!/usr/bin/env python3
"""The doc-comment examples of Sources/, compiled as part of the tests.

Every ```swift block in a /// comment on public API becomes one function of Tests/CIFARGANTests/DocExamples.generated.swift
(never called: compiling is the check). Names an example uses without declaring them — the `x` of
`conv.forward(x, …)` — are declared before it with the type in PLACEHOLDERS, so an example stays a readable
fragment. `…` stands for elided code and is dropped.

    python3 scripts/doc-examples.py            # rewrite the generated file
    python3 scripts/doc-examples.py --check    # exit 1 if it is out of date (run by DocExampleTests)
"""
import pathlib, re, sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/CIFARGANTests/DocExamples.generated.swift"

# name → declaration, for names examples use as givens.
PLACEHOLDERS = {
    "x": "let x = Tensor(shape: [2, 3, 32, 32])",
    "dy": "let dy = Tensor(shape: [2, 2])",
    "z": "let z = Tensor(shape: [2, 100])",
    "z1": "let z1 = Tensor(shape: [2, 100])", "z2": "let z2 = Tensor(shape: [2, 100])",
    "t0": "let t0 = Tensor(shape: [2, 1])", "t1": "let t1 = Tensor(shape: [2, 1])",
    "a": "let a = Tensor(shape: [2, 2])", "b": "let b = Tensor(shape: [2, 2])", "c": "let c = Tensor(shape: [2, 2])",
    "images": "let images = Tensor(shape: [2, 3, 32, 32])",
    "logits": "let logits = Tensor(shape: [2, 1])", "targets": "let targets = Tensor(shape: [2, 1])",
    "realLogits": "let realLogits = Tensor(shape: [2, 1])", "dRealLogits": "let dRealLogits = Tensor(shape: [2, 1])",
    "features": "let features = Tensor(shape: [2, 128])",
    "url": "let url = URL(fileURLWithPath: \"runs/cat\")", "dir": "let dir = URL(fileURLWithPath: \"data\")",
    "run": "let run = URL(fileURLWithPath: \"runs/cat\")", "weightsURL": "let weightsURL = URL(fileURLWithPath: \"w.pth\")",
    "rng": "var rng = RandomGenerator(seed: 0)",
    "net": "let net = Sequential([])", "generator": "let generator = Sequential([])",
    "labels": "let labels = ClassLabels(classes: 10)",
    "config": "let config = RunConfig()",
    "dataset": "let dataset = try CIFAR10.load(from: URL(fileURLWithPath: \"data\"), split: .train)",
    "cats": "let cats = try CIFAR10.load(from: URL(fileURLWithPath: \"data\"), split: .train)",
    "testSet": "let testSet = try CIFAR10.load(from: URL(fileURLWithPath: \"data\"), split: .test)",
    "data": "let data = Data()",
    "pixels": "let pixels = [UInt8]()",
    "real": "let real = FeatureSet(count: 0, dim: 1, values: [])",
    "fake": "let fake = FeatureSet(count: 0, dim: 1, values: [])",
    "reference": "let reference = FeatureSet(count: 0, dim: 1, values: []).statistics()",
    "mu": "let mu = [Double]()", "sigma": "let sigma = [Double]()",
    "image": "let image = RGBImage(width: 1, height: 1, pixels: [0, 0, 0])",
    "augment": "let augment = DiffAugment(policy: [.color], seed: 0)",
    "indices": "let indices: ArraySlice<Int> = [0, 1][...]",
    "conv1": "var rng1 = RandomGenerator(seed: 0); let conv1 = Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, rng: &rng1)",
    "conv2": "var rng2 = RandomGenerator(seed: 0); let conv2 = Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, rng: &rng2)",
    "bn1": "let bn1 = BatchNorm(numFeatures: 8)", "bn2": "let bn2 = BatchNorm(numFeatures: 8)",
    "batch": "let batch = 64",
    "classes": "let classes = [Int]()",
    "process": "func process(sample: Int, scratch: Int) {}",
    "weight": "let weight = Tensor(shape: [192, 768, 1, 7])", "bias": "let bias = Tensor(shape: [192])",
    "y": "let y = Tensor(shape: [8, 192, 17, 17])",
}

def examples():
    for path in sorted((ROOT / "Sources").rglob("*.swift")):
        lines = path.read_text().split("\n")
        i = 0
        while i < len(lines):
            if lines[i].strip() == "/// ```swift":
                j, block = i + 1, []
                while lines[j].strip() != "/// ```":
                    text = lines[j].strip()
                    block.append(text[4:] if text.startswith("/// ") else text[3:])
                    j += 1
                k = j + 1
                while k < len(lines) and lines[k].strip().startswith(("///", "@")):
                    k += 1
                # Only examples of public API: the test target sees the libraries as users do (release builds
                # are not compiled for @testable import).
                yield path.relative_to(ROOT), i + 1, block, "public" in lines[k] if k < len(lines) else False
                i = j
            i += 1

def declared(block):
    """Names an example declares at its top level (`let y = …`, `let (a, b) = …`), not inside a type or an `if let`."""
    names = set()
    for line in block:
        m = re.match(r"\s*(?:let|var)\s+(\(([^)]*)\)|[A-Za-z_]\w*)", line)
        if m:
            names |= set(re.findall(r"[A-Za-z_]\w*", m.group(2))) if m.group(2) is not None else {m.group(1)}
    return names

def types(block):
    return set(re.findall(r"\bstruct\s+([A-Za-z_]\w*)", "\n".join(block)))

def render():
    out = ["// Generated by scripts/doc-examples.py from the /// ```swift blocks of Sources/: do not edit.",
           "// Each function compiles one example (it is never called); DocExampleTests keeps this file current.",
           "// swiftlint:disable all", "import CIFARGAN", "import GANCore", "import Foundation", ""]
    for n, (path, line, block, public) in enumerate(examples()):
        if not public:
            out.append(f"// {path}:{line}: an example of internal API, not compiled here\n")
            continue
        body = [re.sub(r"…[^\n]*?…|…", "", l).rstrip() for l in block]
        body = [l.replace(", ])", "])").replace(", ]", "]") for l in body]
        text = "\n".join(body)
        have = declared(body)
        uses = [name for name in PLACEHOLDERS if name not in have | types(body) and re.search(r"(?<![.\w])" + name + r"\b", text)]
        out.append(f"// {path}:{line}")
        out.append(f"private func docExample{n}() throws {{")
        out += ["    " + PLACEHOLDERS[name] for name in uses]
        out += ["    " + l if l else "" for l in body]
        # Every value counts as used, so that the compiler's unused-value warnings stay off (zero warnings).
        out += [f"    _ = {name}" for name in sorted(have | set(uses)) if name != "_"]
        out.append("}")
        out.append("")
    return "\n".join(out)

if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run python3 scripts/doc-examples.py", file=sys.stderr)
            sys.exit(1)
    else:
        OUT.write_text(text)
