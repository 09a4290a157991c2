/// Each sample's label quality over the run so far, from embeddings alone: dataset cartography
/// (Swayamdipta et al. 2020) and AUM (Pleiss et al. 2020) with kNN votes (`LabelQuality`) in
/// place of the model's probabilities.
///
/// - `knnAUM`: the mean of `label_margin` over all checkpoints: the headline label-issue score,
///   lower is more likely mislabelled. A sample whose neighbours outvote its label at most
///   checkpoints scores below 0, whether or not training later memorised it.
/// - `knnAUMLastHalf`: the same over the last `ceil(C / 2)` checkpoints (the settled embedding).
/// - `meanAgreement`, `variability`: the mean and the population standard deviation of
///   `label_agreement` (cartography's confidence and variability).
/// - `forgettingEvents`: how often the sample's own label won the kNN vote at one checkpoint and
///   not at the next. "Won" means a strictly positive margin: a tie between its own label and
///   another is not a majority for its own label.
/// - `stableFromStep`: the step from which its own label won the vote at every checkpoint up to
///   the last; nil when it does not win at the last.
/// - `finalOutlierScores`: the outlier scores of the last checkpoint.
///
/// Means come from exact integer vote counts, so they do not drift with the number of checkpoints.
public struct TrainingDynamics: Sendable {
    public let labels: [Int]
    /// The checkpoints covered, in order.
    public let steps: [Int]
    public let knnAUM: [Float]
    public let knnAUMLastHalf: [Float]
    public let meanAgreement: [Float]
    public let variability: [Float]
    public let forgettingEvents: [Int]
    public let stableFromStep: [Int?]
    public let finalOutlierScores: [Float]

    public var count: Int { labels.count }
    public var checkpoints: Int { steps.count }

    /// Cartography's regions of the mean-agreement/variability map, for the summary frame.
    public enum Region: String, Sendable, CaseIterable {
        /// The neighbourhood agreed with the label throughout.
        case easy
        /// The vote swung during training: the sample moved between classes.
        case ambiguous
        /// The neighbourhood mostly disagreed throughout: likely mislabelled (or a hard sample).
        case hard = "hard / likely mislabelled"
    }

    /// Variability from which a sample counts as ambiguous: a vote that swung by a fifth of its
    /// range or more (0.5 is the largest possible population deviation of a value in [0, 1]).
    public static let ambiguousVariability: Float = 0.2
    /// Below it (and not ambiguous) the sample is hard: most of its neighbours carried another label.
    public static let easyAgreement: Float = 0.5

    /// The sample's region: ambiguous from `ambiguousVariability`, otherwise easy from
    /// `easyAgreement` mean agreement, otherwise hard.
    public func region(_ i: Int) -> Region {
        if variability[i] >= Self.ambiguousVariability { return .ambiguous }
        return meanAgreement[i] >= Self.easyAgreement ? .easy : .hard
    }

    /// `dynamics.csv`: a header, then one row per sample (empty `stable_from_step` when not stable).
    public func csv() -> String {
        var text = "index,label,knn_aum,knn_aum_last_half,mean_agreement,variability,forgetting_events,stable_from_step,final_outlier_score\n"
        text.reserveCapacity(count * 64)
        for i in 0..<count {
            let stable = stableFromStep[i].map(String.init) ?? ""
            text += "\(i),\(labels[i]),\(knnAUM[i]),\(knnAUMLastHalf[i]),\(meanAgreement[i]),\(variability[i]),"
            text += "\(forgettingEvents[i]),\(stable),\(finalOutlierScores[i])\n"
        }
        return text
    }
}

/// Gathers `TrainingDynamics` one checkpoint at a time. Memory: a few running arrays of N plus
/// one byte per sample per checkpoint (the margins, which the last-half mean needs once the
/// number of checkpoints is known).
public struct TrainingDynamicsAccumulator: Sendable {
    public let labels: [Int]
    public private(set) var steps: [Int] = []
    private var neighbours = 0
    /// Each sample's margin in votes (`LabelQuality.marginVotes`) at the checkpoints of the last
    /// half of the run so far, oldest first: the half only moves on, so older ones are dropped.
    private var lastHalfVotes: [[Int8]] = []
    /// Each sample's margin summed over `lastHalfVotes`, kept as they come and go: O(N) a checkpoint.
    private var lastHalfSum: [Int32] = []
    private var marginSum: [Int32]
    private var agreementSum: [Int32]
    private var agreementSquares: [Int32]
    private var forgetting: [Int32]
    /// Whether the sample's own label won the vote at the last checkpoint added.
    private var wins: [Bool]
    /// Index into `steps` where the current run of wins began; -1 when not winning.
    private var winningSince: [Int32]
    private var lastOutlierScores: [Float]

    public init(labels: [Int]) {
        self.labels = labels
        let n = labels.count
        marginSum = [Int32](repeating: 0, count: n)
        agreementSum = marginSum
        agreementSquares = marginSum
        forgetting = marginSum
        wins = [Bool](repeating: false, count: n)
        winningSince = [Int32](repeating: -1, count: n)
        lastOutlierScores = [Float](repeating: 0, count: n)
    }

    /// Adds one checkpoint.
    /// - Returns: false, adding nothing, when the sample count or k differs from the labels' or
    ///   from the earlier checkpoints'.
    @discardableResult
    public mutating func add(step: Int, quality: LabelQuality, outlierScores: [Float]) -> Bool {
        let n = labels.count
        guard quality.count == n, outlierScores.count == n, steps.isEmpty || quality.neighbours == neighbours
        else { return false }
        neighbours = quality.neighbours
        let index = Int32(truncatingIfNeeded: steps.count)
        let first = steps.isEmpty
        for i in 0..<n {
            let own = Int32(quality.ownVotes[i]), margin = Int32(quality.marginVotes[i])
            marginSum[i] += margin
            agreementSum[i] += own
            agreementSquares[i] += own * own
            let winning = margin > 0
            if winning {
                if first || !wins[i] { winningSince[i] = index }
            } else {
                if !first && wins[i] { forgetting[i] += 1 }
                winningSince[i] = -1
            }
            wins[i] = winning
        }
        if lastHalfSum.isEmpty { lastHalfSum = [Int32](repeating: 0, count: n) }
        lastHalfVotes.append(quality.marginVotes)
        for i in 0..<n { lastHalfSum[i] += Int32(quality.marginVotes[i]) }
        steps.append(step)
        // The last half is the last ceil(C / 2) checkpoints.
        while lastHalfVotes.count > (steps.count + 1) / 2 {
            let leaving = lastHalfVotes.removeFirst()
            for i in 0..<n { lastHalfSum[i] -= Int32(leaving[i]) }
        }
        lastOutlierScores = outlierScores
        return true
    }

    /// The dynamics up to and including the last checkpoint added; nil before the first.
    public var dynamics: TrainingDynamics? {
        guard !steps.isEmpty else { return nil }
        let n = labels.count, c = steps.count, k = Double(neighbours)
        let half = (c + 1) / 2
        let votes = Double(c) * k
        var variability = [Float](repeating: 0, count: n)
        for i in 0..<n {
            // C * sum(a^2) - (sum a)^2 is exact in integers, and never negative.
            let spread = Double(c) * Double(agreementSquares[i]) - Double(agreementSum[i]) * Double(agreementSum[i])
            variability[i] = Float(max(spread, 0).squareRoot() / votes)
        }
        return TrainingDynamics(
            labels: labels, steps: steps,
            knnAUM: marginSum.map { Float(Double($0) / votes) },
            knnAUMLastHalf: lastHalfSum.map { Float(Double($0) / (Double(half) * k)) },
            meanAgreement: agreementSum.map { Float(Double($0) / votes) },
            variability: variability,
            forgettingEvents: forgetting.map(Int.init),
            stableFromStep: winningSince.map { $0 >= 0 ? steps[Int($0)] : nil },
            finalOutlierScores: lastOutlierScores)
    }
}
