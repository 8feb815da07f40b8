//! Tasks and task distributions: [`Task`] (support and query sets), [`TaskData`] (a pool of
//! points to split), the [`TaskDistribution`] trait and seeded meta-batches.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, check_finite};

/// One task: a support set to adapt on and a query set to evaluate the adapted model on.
///
/// Inputs are `points x input_dim` (one sample per row), targets `points x output_dim`.
/// [`Task::new`] checks that the data are finite, non-empty and consistent, so every
/// algorithm can take a `Task` as valid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Support inputs.
    pub support_x: DMatrix<f64>,
    /// Support targets.
    pub support_y: DMatrix<f64>,
    /// Query inputs.
    pub query_x: DMatrix<f64>,
    /// Query targets.
    pub query_y: DMatrix<f64>,
}

fn check_pair(
    (what_x, what_y, what_rows): (&'static str, &'static str, &'static str),
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
) -> Result<(), MetaError> {
    if x.nrows() == 0 {
        return Err(MetaError::Dimension {
            what: what_x,
            expected: 1,
            got: 0,
        });
    }
    if y.nrows() != x.nrows() {
        return Err(MetaError::Dimension {
            what: what_rows,
            expected: x.nrows(),
            got: y.nrows(),
        });
    }
    check_finite(what_x, x.as_slice())?;
    check_finite(what_y, y.as_slice())
}

impl Task {
    /// A task from its support and query sets: [`MetaError::Dimension`] if a set is empty
    /// or its targets have another number of rows than its inputs, or the query set has
    /// other widths than the support set; [`MetaError::NonFinite`] for a NaN or infinite
    /// entry.
    pub fn new(
        support_x: DMatrix<f64>,
        support_y: DMatrix<f64>,
        query_x: DMatrix<f64>,
        query_y: DMatrix<f64>,
    ) -> Result<Task, MetaError> {
        check_pair(
            ("support inputs", "support targets", "support target rows"),
            &support_x,
            &support_y,
        )?;
        check_pair(
            ("query inputs", "query targets", "query target rows"),
            &query_x,
            &query_y,
        )?;
        if query_x.ncols() != support_x.ncols() {
            return Err(MetaError::Dimension {
                what: "query input columns",
                expected: support_x.ncols(),
                got: query_x.ncols(),
            });
        }
        if query_y.ncols() != support_y.ncols() {
            return Err(MetaError::Dimension {
                what: "query target columns",
                expected: support_y.ncols(),
                got: query_y.ncols(),
            });
        }
        Ok(Task {
            support_x,
            support_y,
            query_x,
            query_y,
        })
    }

    /// Input width.
    pub fn input_dim(&self) -> usize {
        self.support_x.ncols()
    }

    /// Target width.
    pub fn output_dim(&self) -> usize {
        self.support_y.ncols()
    }

    /// Check that a network of `inputs -> outputs` fits this task
    /// ([`MetaError::Dimension`] otherwise).
    pub fn check_dims(&self, inputs: usize, outputs: usize) -> Result<(), MetaError> {
        if self.input_dim() != inputs {
            return Err(MetaError::Dimension {
                what: "task input columns (model inputs)",
                expected: inputs,
                got: self.input_dim(),
            });
        }
        if self.output_dim() != outputs {
            return Err(MetaError::Dimension {
                what: "task target columns (model outputs)",
                expected: outputs,
                got: self.output_dim(),
            });
        }
        Ok(())
    }
}

/// All the points one task holds, to be split into support and query sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskData {
    /// Inputs, `points x input_dim`.
    pub x: DMatrix<f64>,
    /// Targets, `points x output_dim`.
    pub y: DMatrix<f64>,
}

impl TaskData {
    /// A pool of points: [`MetaError::Dimension`] if empty or the rows differ,
    /// [`MetaError::NonFinite`] for a NaN or infinite entry.
    pub fn new(x: DMatrix<f64>, y: DMatrix<f64>) -> Result<TaskData, MetaError> {
        check_pair(("task inputs", "task targets", "task target rows"), &x, &y)?;
        Ok(TaskData { x, y })
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// Whether the pool is empty (never, for a pool made by [`TaskData::new`]).
    pub fn is_empty(&self) -> bool {
        self.x.nrows() == 0
    }

    /// A support set of `k_support` and a disjoint query set of `k_query` points drawn
    /// without replacement, seeded by `rng`: [`MetaError::NotEnoughData`] if the pool holds
    /// fewer than `k_support + k_query` points (`requested` saturates at `usize::MAX`) or a
    /// count is zero.
    pub fn split(
        &self,
        k_support: usize,
        k_query: usize,
        rng: &mut StdRng,
    ) -> Result<Task, MetaError> {
        let total = k_support.checked_add(k_query);
        let requested = total.unwrap_or(usize::MAX);
        if total.is_none_or(|n| n > self.len()) || k_support == 0 || k_query == 0 {
            return Err(MetaError::NotEnoughData {
                requested,
                support: k_support,
                query: k_query,
                available: self.len(),
            });
        }
        let idx = sample(rng, self.len(), requested).into_vec();
        let rows = |ids: &[usize], m: &DMatrix<f64>| m.select_rows(ids.iter());
        let (s, q) = idx.split_at(k_support);
        Task::new(
            rows(s, &self.x),
            rows(s, &self.y),
            rows(q, &self.x),
            rows(q, &self.y),
        )
    }
}

/// A distribution over tasks: draw a task with `k_support` support and `k_query` query
/// points from a seeded generator.
///
/// Implementations must draw only from `rng`, so that the same seed gives the same task.
/// [`sample_batch`] seeds each task of a meta-batch separately from `(seed, iteration,
/// index)`, which makes a meta-batch independent of the order (and thread) in which its
/// tasks are drawn.
pub trait TaskDistribution: Sync {
    /// Input width of the tasks.
    fn input_dim(&self) -> usize;

    /// Target width of the tasks.
    fn output_dim(&self) -> usize;

    /// Draw one task.
    fn sample(&self, rng: &mut StdRng, k_support: usize, k_query: usize)
    -> Result<Task, MetaError>;
}

/// A 64-bit mix of the inputs (SplitMix64's finalizer over a running combination): the
/// seed of one task of one meta-iteration.
pub fn task_seed(seed: u64, iteration: u64, index: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(mix(mix(seed) ^ iteration) ^ index)
}

/// The `n` tasks of meta-iteration `iteration` under `seed`: task `i` is drawn from its own
/// generator seeded with [`task_seed`]`(seed, iteration, i)`.
///
/// ```
/// use metalearn::{sample_batch, Sinusoid};
/// let a = sample_batch(&Sinusoid::default(), 7, 0, 3, 10, 10).unwrap();
/// let b = sample_batch(&Sinusoid::default(), 7, 0, 3, 10, 10).unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a[0].support_x.nrows(), 10);
/// ```
pub fn sample_batch<D: TaskDistribution + ?Sized>(
    dist: &D,
    seed: u64,
    iteration: u64,
    n: usize,
    k_support: usize,
    k_query: usize,
) -> Result<Vec<Task>, MetaError> {
    (0..n)
        .map(|i| {
            let mut rng = StdRng::seed_from_u64(task_seed(seed, iteration, i as u64));
            dist.sample(&mut rng, k_support, k_query)
        })
        .collect()
}
