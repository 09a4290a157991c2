import Canvas
import LinearAlgebra
import RunFormat

/// What stays the same in every frame of one film.
public struct FilmSetting: Sendable {
    public var sampleCount: Int
    public var dimension: Int
    public var labels: [Int]?
    public var classNames: [String]
    public var thumbnails: Thumbnails?
    /// The whole run's losses when known in advance (offline); drawn faint behind the current part.
    public var wholeRunLosses: LossHistory?
    /// How many checkpoints the film will have, when known.
    public var checkpointCount: Int?
    /// The last step of the training, when known in advance: the loss chart's axis spans it from the start.
    public var finalStep: Int?
    public var title: String?
    /// One phrase saying how frames are aligned, for the subtitle.
    public var alignment: String
    /// The projection and its parameters, for the subtitle: `PCA`, `UMAP (n_neighbors 15, ...)`.
    public var projection = "PCA"
    /// How the points are drawn: dots, per-class density, or density once dots would overplot.
    public var pointStyle: PointStyle = .auto
    /// Set for a comparison film: the frames are `ComparisonContent`, two runs side by side.
    public var comparison: ComparisonSetting?

    public init(sampleCount: Int, dimension: Int, labels: [Int]?, classNames: [String], thumbnails: Thumbnails?,
                wholeRunLosses: LossHistory?, checkpointCount: Int?, finalStep: Int? = nil, title: String?, alignment: String) {
        self.sampleCount = sampleCount
        self.dimension = dimension
        self.labels = labels
        self.classNames = classNames
        self.thumbnails = thumbnails
        self.wholeRunLosses = wholeRunLosses
        self.checkpointCount = checkpointCount
        self.finalStep = finalStep
        self.title = title
        self.alignment = alignment
    }
}

/// How the scatter draws its points.
public enum PointStyle: String, Sendable, CaseIterable {
    /// One translucent dot per point.
    case dots
    /// Per-class counts per pixel, tone-mapped and colour-blended (the look of datashader).
    case density
    /// Density from 50,000 points or when dots would cover most of the panel, dots otherwise.
    case auto
}

/// What a leaderboard ranks and rings (`--leaderboard`, the explorer's boards); how each reads is
/// its `wording` (LeaderboardPanel), how it is ranked `AnalysedCheckpoint.ranking`.
public enum LeaderboardKind: String, Sendable, CaseIterable {
    /// Lowest outlier score (cleanlab's kNN outlier score): the most atypical samples.
    case outliers
    /// Lowest running kNN-AUM (the mean kNN label margin up to the checkpoint): likely mislabelled
    /// or ambiguous samples.
    case labelIssues = "label-issues"
    /// Largest move since the previous checkpoint relative to the neighbourhood, or a changed
    /// neighbourhood majority label.
    case movers
    /// The samples two runs see most differently (`compare` only): the difference of their
    /// outlier-score percentile between the runs, plus that of their label agreement when there
    /// are labels; higher disagrees more.
    case disagreement
}

/// The samples a frame ranks, best first: listed beside the scatter and ringed in it.
public struct Leaderboard: Sendable, Equatable {
    public var kind: LeaderboardKind
    public var entries: [RankedSample]
    /// The values rest on an approximate neighbour search (`--search approximate`); an outlier
    /// board's order is still proved exact.
    public var approximate: Bool

    public init(kind: LeaderboardKind, entries: [RankedSample], approximate: Bool = false) {
        self.kind = kind
        self.entries = entries
        self.approximate = approximate
    }
}

/// One frame's data: a checkpoint's aligned projection and leaderboard, or a moment between two
/// checkpoints (positions interpolated, the next leaderboard fading in).
public struct FrameContent: Sendable {
    /// The step the title shows.
    public var step: Int
    /// Where the loss chart's cursor stands: `step` at a checkpoint, between two checkpoints' steps
    /// in a frame between them.
    public var stepPosition: Double
    public var epoch: Double?
    /// 0-based position in the run of the checkpoint shown, or last passed.
    public var checkpointIndex: Int
    /// Display coordinates (see `Aligner`): about unit radius.
    public var points: PlanarPoints
    public var leaderboard: Leaderboard
    /// The next checkpoint's leaderboard, fading in between two checkpoints; nil at a checkpoint.
    public var incoming: Leaderboard?
    /// How far `incoming` has replaced `leaderboard`, 0...1.
    public var blend: Double
    /// The losses logged up to `stepPosition`.
    public var losses: LossHistory
    /// Accuracy on the evaluation set, shown in the title when known.
    public var testAccuracy: Double?
    /// `--trails`: each point's earlier checkpoint positions, oldest first; its trail runs through
    /// them to `points`.
    public var trails: [PlanarPoints]
    /// The opacity of each trail segment, 0...1: the one from `trails[i]` to the next position.
    public var trailOpacities: [Double]
    /// How much of the embedding space the picture keeps, in words (`Faithfulness.phrase`).
    public var faithfulness: String?

    public init(step: Int, stepPosition: Double? = nil, epoch: Double?, checkpointIndex: Int, points: PlanarPoints,
                leaderboard: Leaderboard, incoming: Leaderboard? = nil, blend: Double = 0, losses: LossHistory,
                testAccuracy: Double? = nil, trails: [PlanarPoints] = [], trailOpacities: [Double] = []) {
        self.step = step
        self.stepPosition = stepPosition ?? Double(step)
        self.epoch = epoch
        self.checkpointIndex = checkpointIndex
        self.points = points
        self.leaderboard = leaderboard
        self.incoming = incoming
        self.blend = blend
        self.losses = losses
        self.testAccuracy = testAccuracy
        self.trails = trails
        self.trailOpacities = trailOpacities
    }

    /// A checkpoint's frame ranking its most atypical samples.
    public init(step: Int, epoch: Double?, checkpointIndex: Int, points: PlanarPoints, outliers: [RankedSample], losses: LossHistory,
                testAccuracy: Double? = nil) {
        self.init(step: step, epoch: epoch, checkpointIndex: checkpointIndex, points: points,
                  leaderboard: Leaderboard(kind: .outliers, entries: outliers),
                  losses: losses, testAccuracy: testAccuracy)
    }
}

/// A text label drawn inside the scatter panel, and the box it takes in frame pixels (y down).
public struct DrawnLabel: Sendable, Equatable {
    public let text: String
    public let rect: Rect
}
