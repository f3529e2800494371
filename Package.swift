// swift-tools-version:6.0
import PackageDescription

// BLAS: OpenBLAS (found with pkg-config) on Linux, Accelerate on Apple platforms.
let package = Package(
    name: "cifar-gan",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "GANCore", targets: ["GANCore"]),
        .library(name: "CIFARGAN", targets: ["CIFARGAN"]),
        .executable(name: "cifar-gan", targets: ["cifar-gan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        // oneDNN's convolutions, loaded at run time when installed (libdnnl-dev); see the target's header.
        .target(
            name: "COneDNN",
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]
        ),
        // MPI (Open MPI), loaded at run time under mpirun; see the target's header.
        .target(
            name: "CMPI",
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]
        ),
        // Direct kernels for convolutions with few output channels (AVX2, chosen at run time); see its header.
        .target(name: "CNarrowConvolution"),
        // Matrix transposes for layout changes (AVX2 8×8 blocks, chosen at run time); see its header.
        .target(name: "CTranspose"),
        // The tile transforms of Winograd F(2×2, 2×2) (AVX-512 or AVX2, chosen at run time); see its header.
        .target(name: "CWinograd"),
        // Passes over bfloat16 activations outside oneDNN (AVX-512, chosen at run time); see its header.
        .target(name: "CBFloat16"),
        .target(
            name: "GANCore",
            dependencies: [.target(name: "COpenBLAS", condition: .when(platforms: [.linux])), "COneDNN", "CMPI", "CNarrowConvolution", "CTranspose", "CWinograd", "CBFloat16"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "CIFARGAN",
            dependencies: ["GANCore", "CZlib"],
            resources: [.copy("Resources")]
        ),
        .executableTarget(
            name: "cifar-gan",
            dependencies: ["CIFARGAN", "GANCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(
            name: "GANCoreTests",
            dependencies: ["GANCore", "CIFARGAN", "CNarrowConvolution", "CTranspose", "CWinograd", "CBFloat16"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "CIFARGANTests",
            // The executable is a dependency so that end-to-end tests can run the built `cifar-gan`.
            dependencies: ["CIFARGAN", "GANCore", "cifar-gan"],
            resources: [.copy("Fixtures")]
        ),
    ]
)
