import LinearAlgebra
import Testing
@testable import Projection

#if canImport(Glibc)
import Glibc
#endif

@Suite struct TSNETests {
    /// Gaussian clusters in `dimensions`-D: centres N(0, 1) per coordinate, so their directions
    /// are far apart in cosine distance, and points N(0, `noise`) around them; cluster c holds
    /// samples `c * perCluster ..< (c + 1) * perCluster`.
    static func clusters(_ clusters: Int, of perCluster: Int, dimensions: Int = 20, noise: Double = 0.15,
                         seed: UInt64 = 1) -> (data: Matrix, labels: [Int]) {
        var generator = SplitMix(seed: seed)
        let centres = (0..<clusters).map { _ in (0..<dimensions).map { _ in generator.normal() } }
        var data = Matrix(zeros: clusters * perCluster, dimensions)
        var labels: [Int] = []
        for c in 0..<clusters {
            for p in 0..<perCluster {
                for j in 0..<dimensions { data[c * perCluster + p, j] = Float(centres[c][j] + generator.normal() * noise) }
                labels.append(c)
            }
        }
        return (data, labels)
    }

    /// Each row's `k` nearest other rows by cosine distance (`1 - cos`), brute force, nearest first.
    static func cosineGraph(_ data: Matrix, k: Int) -> NeighbourGraph {
        let n = data.rows
        let norms = (0..<n).map { i in data.row(i).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        var indices: [Int32] = [], distances: [Float] = []
        for i in 0..<n {
            var row: [(distance: Double, index: Int)] = []
            for j in 0..<n where j != i {
                var dot = 0.0
                for c in 0..<data.columns { dot += Double(data[i, c]) * Double(data[j, c]) }
                row.append((1 - dot / (norms[i] * norms[j]), j))
            }
            row.sort { ($0.distance, $0.index) < ($1.distance, $1.index) }
            for (distance, index) in row.prefix(k) {
                indices.append(Int32(index))
                distances.append(Float(max(distance, 0)))
            }
        }
        return NeighbourGraph(count: n, k: k, indices: indices, distances: distances)
    }

    /// scikit-learn's `trustworthiness(X, layout, n_neighbors=k)` (Euclidean in both spaces), brute force:
    /// `1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in layout kNN(i), not data kNN(i)} (rank_i(j) - k)`.
    static func trustworthiness(_ data: Matrix, _ layout: PlanarPoints, k: Int) -> Double {
        let n = data.rows
        var penalty = 0.0
        for i in 0..<n {
            var byData: [(Double, Int)] = [], byLayout: [(Double, Int)] = []
            for j in 0..<n where j != i {
                var d = 0.0
                for c in 0..<data.columns { d += Double(data[i, c] - data[j, c]) * Double(data[i, c] - data[j, c]) }
                byData.append((d, j))
                let dx = Double(layout.x[i] - layout.x[j]), dy = Double(layout.y[i] - layout.y[j])
                byLayout.append((dx * dx + dy * dy, j))
            }
            byData.sort { $0 < $1 }
            byLayout.sort { $0 < $1 }
            var rank = [Int](repeating: 0, count: n)
            for (r, entry) in byData.enumerated() { rank[entry.1] = r + 1 }
            for (_, j) in byLayout.prefix(k) where rank[j] > k { penalty += Double(rank[j] - k) }
        }
        return 1 - 2 / (Double(n * k) * Double(2 * n - 3 * k - 1)) * penalty
    }

    /// The share of each sample's `k` nearest in the layout that carry its label.
    static func sameLabelShare(_ layout: PlanarPoints, labels: [Int], k: Int, samples: [Int]? = nil) -> Double {
        let n = layout.count
        var same = 0, all = 0
        for i in samples ?? Array(0..<n) {
            let nearest = (0..<n).filter { $0 != i }.sorted {
                let a = Self.squaredDistance(layout, i, $0), b = Self.squaredDistance(layout, i, $1)
                return (a, $0) < (b, $1)
            }
            for j in nearest.prefix(k) where labels[j] == labels[i] { same += 1 }
            all += k
        }
        return Double(same) / Double(all)
    }

    static func squaredDistance(_ p: PlanarPoints, _ i: Int, _ j: Int) -> Double {
        let dx = Double(p.x[i] - p.x[j]), dy = Double(p.y[i] - p.y[j])
        return dx * dx + dy * dy
    }

    /// The root mean square distance of the points from their centroid.
    static func spread(_ p: PlanarPoints) -> Double {
        let n = Double(p.count)
        let mx = p.x.reduce(0.0) { $0 + Double($1) } / n, my = p.y.reduce(0.0) { $0 + Double($1) } / n
        let sum = (0..<p.count).reduce(0.0) { $0 + pow(Double(p.x[$1]) - mx, 2) + pow(Double(p.y[$1]) - my, 2) }
        return (sum / n).squareRoot()
    }

    static func meanDisplacement(_ a: PlanarPoints, _ b: PlanarPoints) -> Double {
        (0..<a.count).reduce(0.0) { sum, i in
            sum + (pow(Double(a.x[i] - b.x[i]), 2) + pow(Double(a.y[i] - b.y[i]), 2)).squareRoot()
        } / Double(a.count)
    }

    static func isFinite(_ p: PlanarPoints) -> Bool { p.x.allSatisfy(\.isFinite) && p.y.allSatisfy(\.isFinite) }

    /// The first layout of `data`, from its PCA scores, on a cosine graph for perplexity 30.
    static func firstLayout(_ data: Matrix, seed: UInt64 = 0, threads: Int = 2) throws -> PlanarPoints {
        let tsne = TSNE(perplexity: 30, seed: seed)
        let graph = cosineGraph(data, k: TSNE.graphNeighbours(perplexity: 30, samples: data.rows))
        return tsne.layout(graph: graph, metric: .cosine, start: try PrincipalComponents(fitting: data).scores,
                           first: true, threads: threads)
    }

    @Test func graphNeighboursAreThreePerplexitiesAtMostNMinusOne() {
        #expect(TSNE.graphNeighbours(perplexity: 30, samples: 10_000) == 90)
        #expect(TSNE.graphNeighbours(perplexity: 30, samples: 50) == 49)
        #expect(TSNE.graphNeighbours(perplexity: 5.5, samples: 100) == 16)
        #expect(TSNE.graphNeighbours(perplexity: 30, samples: 1) == 0)
    }

    @Test func affinityRowsReachTheTargetPerplexity() {
        let d: [Double] = [0.1, 0.2, 0.25, 0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2, 3, 4, 5, 6, 7]
        var p = [Double](repeating: 0, count: d.count)
        TSNE.Affinities.fitPerplexity(5, squaredDistances: d[...], into: &p)
        let entropy = -p.reduce(0) { $0 + ($1 > 0 ? $1 * log($1) : 0) }
        #expect(abs(exp(entropy) - 5) < 1e-6)
        #expect(abs(p.reduce(0, +) - 1) < 1e-12)
        #expect(zip(p, p.dropFirst()).allSatisfy { $0 >= $1 }, "nearer neighbours weigh more")
    }

    @Test func symmetricAffinitiesSumToOne() {
        let (data, _) = Self.clusters(3, of: 20)
        let affinities = TSNE.Affinities(graph: Self.cosineGraph(data, k: 15), metric: .cosine, perplexity: 5, threads: 2)
        #expect(abs(affinities.values.reduce(0.0) { $0 + Double($1) } - 1) < 1e-5)
        // P is symmetric: every entry (i, j) has its mirror (j, i) of the same value.
        var entries: [Int: Float] = [:]
        for i in 0..<data.rows {
            for e in affinities.rowStart[i]..<affinities.rowStart[i + 1] {
                entries[i * data.rows + Int(affinities.columns[e])] = affinities.values[e]
            }
        }
        for (key, value) in entries {
            let mirror = entries[(key % data.rows) * data.rows + key / data.rows]
            #expect(mirror == value)
        }
    }

    @Test func separatesClustersAndKeepsNeighbourhoods() throws {
        let (data, labels) = Self.clusters(6, of: 100)
        let layout = try Self.firstLayout(data)
        let pcaTrust = Self.trustworthiness(data, try PrincipalComponents(fitting: data).scores, k: 10)
        let trust = Self.trustworthiness(data, layout, k: 10)
        #expect(Self.isFinite(layout))
        #expect(Self.sameLabelShare(layout, labels: labels, k: 10) > 0.95)
        #expect(trust > 0.95)
        #expect(trust > pcaTrust, "t-SNE keeps local neighbourhoods better than PCA (\(trust) vs \(pcaTrust))")
    }

    @Test func sameInputsGiveTheSameLayoutOnAnyNumberOfThreads() throws {
        let (data, _) = Self.clusters(4, of: 150, seed: 7)
        let once = try Self.firstLayout(data, seed: 3, threads: 1)
        #expect(try Self.firstLayout(data, seed: 3, threads: 1) == once)
        #expect(try Self.firstLayout(data, seed: 3, threads: 3) == once)
        #expect(try Self.firstLayout(data, seed: 4, threads: 1) != once, "the seed reaches the jitter")
    }

    @Test func aFollowingLayoutKeepsPointsWhereTheyWere() throws {
        let (data, _) = Self.clusters(6, of: 100)
        let first = try Self.firstLayout(data)
        var generator = SplitMix(seed: 11)
        var noisy = data
        for e in noisy.storage.indices { noisy.storage[e] += Float(generator.normal() * 0.02) }
        let graph = Self.cosineGraph(noisy, k: 90)
        let followed = TSNE().layout(graph: graph, metric: .cosine, start: first, first: false, threads: 2)
        let independent = try Self.firstLayout(noisy, seed: 5)
        let moved = Self.meanDisplacement(first, followed)
        // Both compared with the first layout after the best rotation, reflection and scale.
        let followedDisparity = try ProcrustesFit(target: first, source: followed).disparity
        let independentDisparity = try ProcrustesFit(target: first, source: independent).disparity
        #expect(moved < 0.1 * Self.spread(first))
        #expect(followedDisparity < 0.25 * independentDisparity)
    }

    @Test func samplesThatChangeClusterJoinTheirNewCluster() throws {
        let (data, labels) = Self.clusters(6, of: 100)
        let first = try Self.firstLayout(data)
        // Ten samples of cluster 0 and ten of cluster 1 trade places (and labels).
        var changed = data, newLabels = labels
        let movers = Array(0..<10) + Array(100..<110)
        for (a, b) in zip(0..<10, 100..<110) {
            for c in 0..<data.columns { changed[a, c] = data[b, c]; changed[b, c] = data[a, c] }
            newLabels.swapAt(a, b)
        }
        let graph = Self.cosineGraph(changed, k: 90)
        let followed = TSNE().layout(graph: graph, metric: .cosine, start: first, first: false, threads: 2)
        // Before, a mover's nearest in the layout are its old cluster; after, its new one.
        let shares = movers.map { Self.sameLabelShare(followed, labels: newLabels, k: 10, samples: [$0]) }
        #expect(Self.sameLabelShare(first, labels: newLabels, k: 10, samples: movers) < 0.2)
        #expect(shares.allSatisfy { $0 > 0.5 }, "every mover's 10 nearest are mostly its new cluster")
        #expect(Self.sameLabelShare(followed, labels: newLabels, k: 10) > 0.95)
    }

    @Test(arguments: [2, 3, 5])
    func tinySetsGiveFiniteLayouts(samples: Int) {
        var generator = SplitMix(seed: UInt64(samples))
        let start = PlanarPoints(x: (0..<samples).map { _ in Float(generator.normal()) },
                                 y: (0..<samples).map { _ in Float(generator.normal()) })
        let k = TSNE.graphNeighbours(perplexity: 30, samples: samples)
        var indices: [Int32] = [], distances: [Float] = []
        for i in 0..<samples {
            let others = (0..<samples).filter { $0 != i }
            indices += others.map(Int32.init)
            distances += others.map { Float(abs($0 - i)) / 10 }
        }
        let graph = NeighbourGraph(count: samples, k: k, indices: indices, distances: distances)
        let first = TSNE().layout(graph: graph, metric: .euclidean, start: start, first: true, threads: 2)
        #expect(Self.isFinite(first))
        #expect(Self.isFinite(TSNE().layout(graph: graph, metric: .euclidean, start: first, first: false, threads: 2)))
    }

    @Test func duplicatesAndEqualDistancesGiveFiniteLayouts() {
        // Forty copies of one sample and forty of another: every distance 0 within a group.
        let n = 80, k = 39
        var indices: [Int32] = [], distances: [Float] = []
        for i in 0..<n {
            let group = i / 40 * 40
            indices += (group..<group + 40).filter { $0 != i }.map(Int32.init)
            distances += [Float](repeating: 0, count: k)
        }
        let graph = NeighbourGraph(count: n, k: k, indices: indices, distances: distances)
        let coincident = PlanarPoints(x: [Float](repeating: 1, count: n), y: [Float](repeating: 2, count: n))
        let layout = TSNE().layout(graph: graph, metric: .cosine, start: coincident, first: true, threads: 2)
        #expect(Self.isFinite(layout))
        #expect(Self.sameLabelShare(layout, labels: (0..<n).map { $0 / 40 }, k: 10) > 0.95)
        // Every neighbour at the same nonzero distance, some slots unfilled (-1).
        let equal = NeighbourGraph(count: n, k: k, indices: indices.enumerated().map { $0.offset % k == k - 1 ? -1 : $0.element },
                                   distances: [Float](repeating: 0.5, count: n * k))
        #expect(Self.isFinite(TSNE().layout(graph: equal, metric: .euclidean, start: layout, first: false, threads: 2)))
    }

    @Test func aShortGraphLowersThePerplexity() throws {
        let (data, labels) = Self.clusters(3, of: 50)
        let graph = Self.cosineGraph(data, k: 5)
        let layout = TSNE(perplexity: 30).layout(graph: graph, metric: .cosine,
                                                 start: try PrincipalComponents(fitting: data).scores, first: true, threads: 2)
        #expect(Self.isFinite(layout))
        #expect(Self.sameLabelShare(layout, labels: labels, k: 5) > 0.9)
    }
}
