#if canImport(Glibc)
import Glibc
#endif
import LinearAlgebra
import Testing
@testable import Projection
import CLayoutKernel

@Suite struct UMAPTests {
    /// `count` samples in `clusters` well-separated Gaussian clusters of `dimension` values.
    static func clusters(count: Int, clusters: Int, dimension: Int, seed: UInt64 = 1) -> (Matrix, [Int]) {
        var random = SplitMix(seed: seed)
        var centres = [[Float]]()
        for _ in 0..<clusters { centres.append((0..<dimension).map { _ in 4 * Float(random.normal()) }) }
        var x = Matrix(zeros: count, dimension)
        let labels = (0..<count).map { $0 % clusters }
        for i in 0..<count { for j in 0..<dimension { x[i, j] = centres[labels[i]][j] + Float(random.normal()) } }
        return (x, labels)
    }

    static func graph(_ x: Matrix, k: Int) throws -> NeighbourGraph {
        try OutlierScores(embeddings: x, graphNeighbours: k).graph
    }

    @Test func theCurveIsUMAPLearns() {
        // umap-learn 0.5: find_ab_params(1.0, 0.1) = (1.5769434, 0.8950608); (1.0, 0.5) = (0.5830300, 1.3341669).
        let (a, b) = UMAP.curve(minimumDistance: 0.1)
        #expect(abs(a - 1.5769434) < 2e-3 && abs(b - 0.8950608) < 2e-3)
        let (a5, b5) = UMAP.curve(minimumDistance: 0.5)
        #expect(abs(a5 - 0.5830300) < 2e-3 && abs(b5 - 1.3341669) < 2e-3)
    }

    @Test func clustersStaySeparate() throws {
        let (x, labels) = Self.clusters(count: 1200, clusters: 6, dimension: 24)
        let graph = try Self.graph(x, k: 14)
        let start = try PrincipalComponents(fitting: x).scores
        let umap = UMAP(seed: 3)
        let one = umap.layout(graph: graph, start: start, first: true, threads: 1)
        #expect(one.x.allSatisfy(\.isFinite) && one.y.allSatisfy(\.isFinite))
        // Each sample's 10 nearest in the layout: nearly all of its own cluster.
        var same = 0
        for i in 0..<one.count {
            let nearest = (0..<one.count).filter { $0 != i }.sorted {
                hypot(one.x[$0] - one.x[i], one.y[$0] - one.y[i]) < hypot(one.x[$1] - one.x[i], one.y[$1] - one.y[i])
            }.prefix(10)
            same += nearest.filter { labels[$0] == labels[i] }.count
        }
        #expect(Double(same) / Double(one.count * 10) > 0.97)
    }

    /// Enough samples for several workers (one per 2,048): the same layout on any number of threads,
    /// first and following.
    @Test func theLayoutIsTheSameOnAnyNumberOfThreads() throws {
        let (x, _) = Self.clusters(count: 4_200, clusters: 8, dimension: 16, seed: 2)
        let graph = try Self.graph(x, k: 14)
        let start = try PrincipalComponents(fitting: x).scores
        let umap = UMAP(seed: 9)
        let one = umap.layout(graph: graph, start: start, first: true, threads: 1)
        for threads in [2, 3] {
            let same = umap.layout(graph: graph, start: start, first: true, threads: threads) == one
            #expect(same, "\(threads) threads, first")
        }
        let followed = umap.layout(graph: graph, start: one, first: false, threads: 1)
        let same = umap.layout(graph: graph, start: one, first: false, threads: 3) == followed
        #expect(same, "3 threads, following")
    }

    @Test func samplesThatChangeClusterJoinTheirNewClusterAndTheRestStay() throws {
        let (x, labels) = Self.clusters(count: 600, clusters: 6, dimension: 20, seed: 5)
        let umap = UMAP(seed: 1)
        let first = umap.layout(graph: try Self.graph(x, k: 14), start: try PrincipalComponents(fitting: x).scores,
                                first: true, threads: 2)
        // Ten samples of cluster 0 and ten of cluster 1 trade places (and labels).
        var changed = x, newLabels = labels
        let zeros = (0..<600).filter { labels[$0] == 0 }.prefix(10), ones = (0..<600).filter { labels[$0] == 1 }.prefix(10)
        for (a, b) in zip(zeros, ones) {
            for c in 0..<x.columns { changed[a, c] = x[b, c]; changed[b, c] = x[a, c] }
            newLabels.swapAt(a, b)
        }
        let followed = umap.layout(graph: try Self.graph(changed, k: 14), start: first, first: false, threads: 2)
        func ownShare(_ layout: PlanarPoints, _ i: Int) -> Double {
            let nearest = (0..<layout.count).filter { $0 != i }.sorted {
                hypot(layout.x[$0] - layout.x[i], layout.y[$0] - layout.y[i]) < hypot(layout.x[$1] - layout.x[i], layout.y[$1] - layout.y[i])
            }.prefix(10)
            return Double(nearest.filter { newLabels[$0] == newLabels[i] }.count) / 10
        }
        for i in Array(zeros) + Array(ones) {
            #expect(ownShare(first, i) < 0.5, "sample \(i) starts among its old cluster")
            #expect(ownShare(followed, i) > 0.5, "sample \(i) joins its new cluster")
        }
        // The others stay: they move little against the layout's size.
        let unchanged = Set(0..<600).subtracting(zeros).subtracting(ones)
        let moved = unchanged.map { hypot(followed.x[$0] - first.x[$0], followed.y[$0] - first.y[$0]) }.reduce(0, +) / Float(unchanged.count)
        let size = (first.x.max()! - first.x.min()!) + (first.y.max()! - first.y.min()!)
        #expect(moved < 0.05 * size)
    }

    /// The eight-lane kernel against the gradients written out in Swift with the C library's
    /// powers: every lane's chain of moves, towards and away, lanes of different lengths.
    @Test(.enabled(if: lk_is_supported() != 0, "needs AVX2 and FMA"))
    func eightLaneMovesAreTheScalarOnes() {
        var g = SplitMix(seed: 13)
        let others = 500
        let ox = (0..<others).map { _ in Float(g.normal()) * 3 }, oy = (0..<others).map { _ in Float(g.normal()) * 3 }
        let (a, b, rate, clip): (Float, Float, Float, Float) = (1.577, 0.895, 0.7, 4)
        let count: [Int32] = [0, 1, 7, 30, 29, 3, 30, 12]
        var rows = [Int32](repeating: 0, count: 30 * 8)
        for m in 0..<30 { for lane in 0..<8 where m < count[lane] {
            let other = Int32(g.next() % UInt64(others))
            rows[m * 8 + lane] = g.next() % 3 == 0 ? other : ~other
        } }
        rows[2 * 8 + 3] = 17  // a move to a sample at the lane's very place: nothing happens
        var x = (0..<8).map { _ in Float(g.normal()) * 3 }, y = (0..<8).map { _ in Float(g.normal()) * 3 }
        var ex = x, ey = y
        for lane in 0..<8 {
            for m in 0..<Int(count[lane]) {
                if m == 2 && lane == 3 { ex[lane] = ox[17]; ey[lane] = oy[17] }
                let move = rows[m * 8 + lane], other = Int(move >= 0 ? move : ~move)
                let dx = ex[lane] - ox[other], dy = ey[lane] - oy[other], d2 = dx * dx + dy * dy
                guard d2 > 0 else { continue }
                let coefficient = move >= 0 ? -2 * a * b * pow(d2, b - 1) / (a * pow(d2, b) + 1)
                    : 2 * b / ((0.001 + d2) * (a * pow(d2, b) + 1))
                let scale = move >= 0 ? 2 * rate : rate
                ex[lane] += scale * min(max(coefficient * dx, -clip), clip)
                ey[lane] += scale * min(max(coefficient * dy, -clip), clip)
            }
        }
        // The kernel from the same start, with lane 3 put on sample 17 before its third move; each
        // lane's moves one after another in one list, as the epoch lays them out.
        var flat: [Int32] = [], start: [Int32] = []
        for lane in 0..<8 {
            start.append(Int32(flat.count))
            flat += (0..<Int(count[lane])).map { rows[$0 * 8 + lane] }
        }
        let firstCount = count.map { min($0, 2) }, restCount = count.map { max($0 - 2, 0) }
        lk_move_eight(flat, start, firstCount, 2, &x, &y, ox, oy, a, b, rate, clip)
        x[3] = ox[17]; y[3] = oy[17]
        lk_move_eight(flat, zip(start, firstCount).map { $0 + $1 }, restCount, 28, &x, &y, ox, oy, a, b, rate, clip)
        for lane in 0..<8 {
            #expect(abs(x[lane] - ex[lane]) <= 1e-4 * max(1, abs(ex[lane])), "lane \(lane)")
            #expect(abs(y[lane] - ey[lane]) <= 1e-4 * max(1, abs(ey[lane])), "lane \(lane)")
        }
    }
}
