// swift-tools-version:6.0
import PackageDescription

// The pipeline, bottom to top:
//   C wrappers (CLinearAlgebra, CCairo, CFFmpeg) and three C kernels (CNeighbourSearch: the outlier
//   search's leading-component bounds and AVX-512 VNNI screen; CSubspaceProduct: the PCA step;
//   CLayoutKernel: UMAP's epochs, eight samples to a vector)
//   LinearAlgebra -> Projection (PCA, Procrustes, outlier scores), Training (the built-in trainer)
//   FileOutput (every file Embedlapse writes: whole or not at all, temporaries, authorship)
//   RunFormat (.npy and the run directory), CheckpointCache (the analysis cache's format)
//   Canvas (Cairo) -> Compositor (the frame)
//   MediaEncoder (MP4, GIF, PNG)
//   Pipeline (checkpoint events, sources, analysis, the film) -> embedlapse (CLI)
//   Explorer (the local web explorer: Hummingbird routes over the same analysis) -> embedlapse serve
let package = Package(
    name: "Embedlapse",
    products: [
        .executable(name: "embedlapse", targets: ["EmbedlapseCLI"]),
        .library(name: "Embedlapse", targets: ["Pipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // SwiftNIO's HTTP/1 types, for the explorer's gate that sees each request as it came (HTTPRequestGate).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        // Hummingbird's own dependencies, named for the explorer's quiet logger and its shutdown on Ctrl-C.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.14.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLinearAlgebra", pkgConfig: "openblas lapacke",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CCairo", pkgConfig: "cairo",
            providers: [.apt(["libcairo2-dev"])]),
        .systemLibrary(
            name: "CFFmpeg", pkgConfig: "libavformat libavcodec libavutil libswscale",
            providers: [.apt(["libavcodec-dev", "libavformat-dev", "libavutil-dev", "libswscale-dev"])]),

        .target(name: "LinearAlgebra", dependencies: ["CLinearAlgebra"]),
        .systemLibrary(name: "CFileSystem"),
        .target(name: "FileOutput", dependencies: ["CFileSystem"]),
        .target(name: "CNeighbourSearch"),
        .target(name: "CSubspaceProduct"),
        .target(name: "CLayoutKernel"),
        .target(name: "Projection", dependencies: ["LinearAlgebra", "CNeighbourSearch", "CSubspaceProduct", "CLayoutKernel"]),
        .target(name: "RunFormat", dependencies: ["LinearAlgebra", "FileOutput"]),
        // The analysis cache's format (docs/cache.md): one folder of its own, entries keyed to their embeddings files.
        .target(name: "CheckpointCache", dependencies: ["FileOutput", "LinearAlgebra", "Projection", "RunFormat"]),
        .target(name: "Training", dependencies: ["LinearAlgebra", "CZlib"]),
        .target(name: "Canvas", dependencies: ["CCairo"]),
        .target(name: "Compositor", dependencies: ["Canvas", "RunFormat", "LinearAlgebra"]),
        .target(name: "MediaEncoder", dependencies: ["CFFmpeg", "CZlib", "FileOutput"]),
        .target(
            name: "Pipeline",
            dependencies: [
                "LinearAlgebra", "Projection", "RunFormat", "Training", "Compositor", "MediaEncoder", "Canvas", "FileOutput", "CheckpointCache",
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ]),
        .target(
            name: "Explorer",
            dependencies: [
                "Pipeline", "CheckpointCache", "Compositor", "Projection", "RunFormat", "LinearAlgebra",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The page, built into the binary as bytes: `embedlapse serve` needs no files beside it.
            resources: [.embedInCode("Page")]),
        .executableTarget(
            name: "EmbedlapseCLI",
            dependencies: [
                "Pipeline", "CheckpointCache", "Explorer", "Compositor", "Projection", "RunFormat", "Training", "LinearAlgebra", "CMalloc", "FileOutput",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "ProjectionTests", dependencies: ["Projection", "CSubspaceProduct", "CNeighbourSearch", "CLayoutKernel"]),
        .testTarget(name: "RunFormatTests", dependencies: ["RunFormat", "FileOutput"]),
        .testTarget(name: "FileOutputTests", dependencies: ["FileOutput"]),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra"]),
        .testTarget(name: "CanvasTests", dependencies: ["Canvas"]),
        .testTarget(name: "EmbedlapseCLITests", dependencies: ["EmbedlapseCLI"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "LinearAlgebra"]),
        .testTarget(name: "MediaTests", dependencies: ["MediaEncoder", "Compositor", "Canvas", "LinearAlgebra", "RunFormat"]),
        .testTarget(name: "ExplorerTests", dependencies: ["Explorer"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "CheckpointCache", "Projection", "Compositor", "LinearAlgebra", "RunFormat", "FileOutput", "MediaEncoder", .product(name: "AsyncAlgorithms", package: "swift-async-algorithms")]),
    ]
)
