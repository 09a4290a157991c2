private import CNeighbourSearch
import Dispatch
import LinearAlgebra
import Synchronization

/// Exact cosine k-nearest neighbours that skips most of the brute-force work.
///
/// Each pair's similarity is first bounded with 8-bit dot products (AVX-512 VNNI, four times
/// the multiply rate of float32): `u_i = m + r_i` with `m` the mean unit vector, `r_i` rounded
/// to int8 with its own scale, and the rounding errors giving a proved interval (about +-0.002)
/// around the similarity. A pair whose upper bound reaches the k-th largest similarity found so
/// far for either point is bounded again with a second rounding of what the first left (about
/// +-2e-5), and computed exactly (double precision) only if it still reaches: a few dozen pairs
/// per point instead of all of them. The result equals brute force up to ties within float
/// rounding. The kernels are in `Sources/CNeighbourSearch`.
enum ScreenedCosineSearch {
    static let isSupported = ns_is_supported() != 0

    static func canSearch(_ x: Matrix) -> Bool {
        isSupported && x.columns <= Int(ns_max_dimension())
    }

    struct Result {
        /// The distances and, row-major `N x k`, the points they belong to.
        var nearest: NearestDistances
        /// Pairs whose similarity was computed exactly (seeds included).
        var exactPairs: Int
    }

    /// The k smallest cosine distances of every row, ascending, or nil when memory runs out.
    /// `seeds` (`N x k` point indices, -1 for none) are tried first: good guesses, such as the
    /// neighbours at the previous checkpoint, raise the thresholds early and save work.
    static func nearest(_ x: Matrix, k: Int, duplicates: DuplicateRows, threads: Int, seeds: [Int32]?) -> Result? {
        precondition(canSearch(x))
        let n = x.rows
        let workers = max(1, min(threads, n))
        let groups = duplicates.any ? duplicates.group.map(Int64.init) : nil
        return x.storage.withUnsafeBufferPointer { values -> Result? in
            groups.withOptionalPointer { group -> Result? in
                guard let points = ns_points_create(values.baseAddress, group, Int64(n), Int64(x.columns)) else {
                    return nil
                }
                defer { ns_points_destroy(points) }
                var screens: [OpaquePointer?] = []
                defer { screens.forEach { ns_screen_destroy($0) } }
                for _ in 0..<workers {
                    guard let screen = ns_screen_create(points, Int32(k)) else { return nil }
                    screens.append(screen)
                }
                let shared = Shared(points: points, screens: screens)
                let chunk = (n + workers - 1) / workers
                let ranges = (0..<workers).map { Int64(min(n, $0 * chunk))..<Int64(min(n, ($0 + 1) * chunk)) }

                let quantised = Atomic<Int>(0)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    if ns_points_quantise(shared.points, ranges[worker].lowerBound, ranges[worker].upperBound) == 0 {
                        quantised.add(1, ordering: .relaxed)
                    }
                }
                guard quantised.load(ordering: .relaxed) == workers else { return nil }
                if let seeds, seeds.count == n * k {
                    seeds.withUnsafeBufferPointer { previous in
                        let guesses = SharedSeeds(base: previous.baseAddress!)
                        // Each worker seeds its own range in its own screen (a screen's flags and
                        // counter belong to one thread) ...
                        DispatchQueue.concurrentPerform(iterations: workers) { worker in
                            ns_screen_seed(shared.screens[worker], shared.points, guesses.base,
                                           ranges[worker].lowerBound, ranges[worker].upperBound)
                        }
                    }
                    // ... then, after the join, every screen takes the ranges the others seeded.
                    for (target, screen) in screens.enumerated() {
                        for (source, range) in ranges.enumerated() where source != target {
                            ns_screen_copy_rows(screen, screens[source], range.lowerBound, range.upperBound)
                        }
                    }
                }

                let tiles = Int(ns_tile_count(points))
                let nextTile = Atomic<Int>(0)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    while true {
                        let tile = nextTile.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard tile < tiles else { return }
                        ns_screen_tile(shared.screens[worker], shared.points, Int64(tile))
                    }
                }

                var distances = [Float](repeating: .infinity, count: n * k)
                var neighbours = [Int32](repeating: -1, count: n * k)
                distances.withUnsafeMutableBufferPointer { d in
                    neighbours.withUnsafeMutableBufferPointer { j in
                        let out = SharedOutput(distances: d.baseAddress!, neighbours: j.baseAddress!)
                        DispatchQueue.concurrentPerform(iterations: workers) { worker in
                            shared.screens.withUnsafeBufferPointer { screens in
                                ns_finish(shared.points, screens.baseAddress, Int32(workers),
                                          ranges[worker].lowerBound, ranges[worker].upperBound,
                                          out.distances, out.neighbours)
                            }
                        }
                    }
                }
                let exact = screens.reduce(0) { $0 + Int(ns_screen_exact_count($1)) }
                return Result(nearest: NearestDistances(k: k, sortedDistances: distances, indices: neighbours),
                              exactPairs: exact)
            }
        }
    }

    // The C handles are shared by the workers; each writes only its own screen, its own range of
    // rows, or its own range of the output.
    private struct Shared: @unchecked Sendable {
        let points: OpaquePointer
        let screens: [OpaquePointer?]
    }

    private struct SharedSeeds: @unchecked Sendable { let base: UnsafePointer<Int32> }
    private struct SharedOutput: @unchecked Sendable {
        let distances: UnsafeMutablePointer<Float>
        let neighbours: UnsafeMutablePointer<Int32>
    }
}

extension Optional where Wrapped == [Int64] {
    fileprivate func withOptionalPointer<R>(_ body: (UnsafePointer<Int64>?) -> R) -> R {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: return body(nil)
        }
    }
}
