import LinearAlgebra

/// How much of the embedding space a checkpoint's picture keeps, as the frame and the explorer say it.
public enum Faithfulness: Sendable, Equatable {
    /// PCA: the fraction of the total variance the two components hold.
    case explainedVariance(Double)
    /// UMAP: how far the picture's neighbourhoods are the embedding space's (`Trustworthiness`).
    case trustworthiness(Trustworthiness)

    /// The fraction of `totalVariance` (the sum of the columns' variances, `N - 1` in the divisor,
    /// as the covariance's eigenvalues) that the centred PCA `scores` hold.
    public static func explainedVariance(of scores: PlanarPoints, totalVariance: Double) -> Faithfulness {
        guard scores.count > 1, totalVariance > 0 else { return .explainedVariance(0) }
        var sum = 0.0
        for i in 0..<scores.count { sum += Double(scores.x[i]) * Double(scores.x[i]) + Double(scores.y[i]) * Double(scores.y[i]) }
        return .explainedVariance(min(max(sum / Double(scores.count - 1) / totalVariance, 0), 1))
    }

    /// The sum of the columns' variances (`N - 1` in the divisor).
    public static func totalVariance(of x: Matrix) -> Double {
        guard x.rows > 1 else { return 0 }
        var sums = [Double](repeating: 0, count: x.columns), squares = sums
        for i in 0..<x.rows {
            let row = x.row(i)
            for (j, value) in zip(0..<x.columns, row) {
                sums[j] += Double(value)
                squares[j] += Double(value) * Double(value)
            }
        }
        let n = Double(x.rows)
        return zip(sums, squares).reduce(0) { $0 + max($1.1 - $1.0 * $1.0 / n, 0) } / (n - 1)
    }

    /// `keeps 44% of the variance` (after "PCA of ..."), `trustworthiness 0.927 (10-NN)`.
    public var phrase: String {
        switch self {
        case .explainedVariance(let fraction): "keeps \(Int((100 * fraction).rounded()))% of the variance"
        case .trustworthiness(let measure): measure.phrase
        }
    }

    /// The number alone, for tables and the explorer.
    public var value: Double {
        switch self {
        case .explainedVariance(let fraction): fraction
        case .trustworthiness(let measure): measure.value
        }
    }
}
