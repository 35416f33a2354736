//! Orderings that make consecutive frame vectors close: a travelling-salesman heuristic for the
//! frame variation σ(F, p) = Σ_k ‖e_{p(k)} − e_{p(k+1)}‖ (MATH.md §1), which Theorem 3.1/3.2 puts in
//! the error bound (δ·d / 2N)·(σ(F, p) + 1).
//!
//! [`order_frame`] works on any [`FrameGeometry`] (the distances between frame vectors and a short
//! list of near neighbours per vector):
//!
//! 1. **Greedy nearest neighbour** from position 0: step to the nearest unvisited vector of the
//!    current vector's neighbour list (ties: the nearest in index, then the lowest index) — the
//!    true nearest unvisited vector when the list is exact; when every listed neighbour is
//!    visited, a scan of all unvisited vectors picks the true nearest.
//! 2. **2-opt** on the open path, as a tour through one extra "free" node at distance 0 from
//!    every vector (so reversing a prefix or a suffix of the path is a 2-opt move too):
//!    - first with neighbour lists and don't-look bits (the classic O(N·k) per sweep scheme:
//!      a move that gains must shorten one of its two removed edges, so it is found from that
//!      edge's end through its neighbour list);
//!    - then, for N up to [`OrderingOptions::exhaustive_limit`], exhaustive passes over all
//!      O(N²) pairs of edges until none gains, which makes the result a true 2-opt local optimum.
//!
//!    Both phases stop after [`OrderingOptions::max_evaluations`] distance evaluations; the
//!    report says whether the result was proven 2-opt optimal.
//! 3. The same 2-opt is also run **from the identity**, and the shorter of the two results is
//!    returned (ties go to the identity-started one). So σ(result) ≤ σ(identity) by
//!    construction, the result is a 2-opt local optimum whenever the exhaustive phase completed
//!    (even when it is the identity), and an ordering equal to the identity comes back as
//!    [`Permutation::Identity`] ([`OrderingReport::chose_identity`]).
//!
//! Everything is deterministic (no clocks, no randomness): the same frame and options give the
//! same permutation on every machine.
//!
//! Geometries: [`super::TetrisFrame`] (sparse distances, O(1) each, and neighbours from the rows
//! a vector touches), [`HarmonicGeometry`] (distances from the Gram function, neighbours the same
//! cyclic offsets for every vector) and [`DenseVectors`] (any frame given as rows; brute-force
//! neighbours, O(N²·d), for small frames).

use super::harmonic::HarmonicFrame;
use super::order::Permutation;
use crate::error::{Error, Result};

/// What [`order_frame`] needs to know about a frame: its size, the distance between two vectors,
/// and a list of near neighbours of each vector. Positions are zero-based.
pub trait FrameGeometry {
    /// Number of frame vectors N.
    fn frame_size(&self) -> usize;

    /// ‖e_{a+1} − e_{b+1}‖ for zero-based positions a, b < N.
    fn distance(&self, a: usize, b: usize) -> f64;

    /// Up to `k` near neighbours of `a` (never `a` itself) as (distance, position), sorted by
    /// distance. The default is exact: the k nearest by brute force, O(N) distance evaluations.
    /// Implementations may return an approximate list; a better list gives a better ordering, and
    /// correctness never depends on it.
    fn candidates(&self, a: usize, k: usize, out: &mut Vec<(f64, usize)>) {
        out.clear();
        let n = self.frame_size();
        out.extend((0..n).filter(|&b| b != a).map(|b| (self.distance(a, b), b)));
        let key = |x: &(f64, usize), y: &(f64, usize)| {
            x.0.total_cmp(&y.0)
                .then_with(|| x.1.abs_diff(a).cmp(&y.1.abs_diff(a)))
                .then_with(|| x.1.cmp(&y.1))
        };
        if out.len() > k && k > 0 {
            out.select_nth_unstable_by(k - 1, key);
        }
        out.truncate(k);
        out.sort_by(key);
    }
}

/// σ(F, p) = Σ_{k=0}^{N−2} ‖e_{p(k)} − e_{p(k+1)}‖ through a [`FrameGeometry`]. Errors if `order`
/// is not a permutation of 0..N−1.
pub fn path_variation<G: FrameGeometry + ?Sized>(geometry: &G, order: &Permutation) -> Result<f64> {
    let n = geometry.frame_size();
    order.validate(n)?;
    Ok((1..n)
        .map(|k| geometry.distance(order.position(k - 1), order.position(k)))
        .sum())
}

/// Limits and knobs of [`order_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderingOptions {
    /// Neighbours per vector for the greedy step and the first 2-opt phase (default 10).
    pub candidates: usize,
    /// Run exhaustive 2-opt passes (O(N²) each) when N is at most this (default 5000).
    pub exhaustive_limit: usize,
    /// Stop improving after this many distance evaluations (default 2·10⁹, a few seconds).
    pub max_evaluations: u64,
}

impl Default for OrderingOptions {
    fn default() -> Self {
        OrderingOptions {
            candidates: 10,
            exhaustive_limit: 5000,
            max_evaluations: 2_000_000_000,
        }
    }
}

/// What [`order_frame`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderingReport {
    /// The ordering to use ([`Permutation::Identity`] when the identity is the best found).
    pub permutation: Permutation,
    /// σ(F, p) of [`OrderingReport::permutation`] (≤ `sigma_identity`).
    pub sigma: f64,
    /// σ(F, identity).
    pub sigma_identity: f64,
    /// σ after the greedy nearest-neighbour step alone.
    pub sigma_greedy: f64,
    /// σ of greedy followed by 2-opt.
    pub sigma_greedy_two_opt: f64,
    /// σ of the identity followed by 2-opt (≤ `sigma_identity`).
    pub sigma_identity_two_opt: f64,
    /// True when the returned ordering is the identity: 2-opt found no improving move from it,
    /// and the greedy start did not end shorter.
    pub chose_identity: bool,
    /// True when the returned ordering is proven a 2-opt local optimum (no reversal of a segment
    /// of the path, prefixes and suffixes included, shortens it by more than
    /// 1e-12·(1 + the two removed edges)): its exhaustive phase ran to the end, which happens for
    /// N ≤ [`OrderingOptions::exhaustive_limit`] within the evaluation budget.
    pub two_opt_optimal: bool,
    /// Number of improving 2-opt moves applied (both starts).
    pub moves: u64,
    /// Number of distance evaluations spent by the search (neighbour lists not counted).
    pub evaluations: u64,
}

/// Orders the frame vectors of `geometry` to make σ(F, p) small (module docs): greedy nearest
/// neighbour then 2-opt, and 2-opt from the identity; the shorter of the two.
pub fn order_frame<G: FrameGeometry + ?Sized>(
    geometry: &G,
    options: &OrderingOptions,
) -> Result<OrderingReport> {
    let n = geometry.frame_size();
    if n as u64 > u32::MAX as u64 {
        return Err(Error::param(format!(
            "frame size N = {n} is too large to order"
        )));
    }
    let sigma_identity = path_variation(geometry, &Permutation::Identity)?;
    if n < 3 {
        // Every ordering of two vectors has the same σ.
        return Ok(OrderingReport {
            permutation: Permutation::Identity,
            sigma: sigma_identity,
            sigma_identity,
            sigma_greedy: sigma_identity,
            sigma_greedy_two_opt: sigma_identity,
            sigma_identity_two_opt: sigma_identity,
            chose_identity: true,
            two_opt_optimal: true,
            moves: 0,
            evaluations: 0,
        });
    }
    let mut search = Search::new(geometry, options);
    let greedy = search.greedy();
    let sigma_greedy = search.path_length(&greedy);
    let (from_greedy, greedy_optimal) = search.two_opt(greedy, options);
    let sigma_greedy_two_opt = search.path_length(&from_greedy);
    let (from_identity, identity_optimal) = search.two_opt((0..n).collect(), options);
    let sigma_identity_two_opt = search.path_length(&from_identity);
    let (path, sigma, two_opt_optimal) = if sigma_greedy_two_opt < sigma_identity_two_opt {
        (from_greedy, sigma_greedy_two_opt, greedy_optimal)
    } else {
        (from_identity, sigma_identity_two_opt, identity_optimal)
    };
    let order: Vec<u32> = path.iter().map(|&p| p as u32).collect();
    // `explicit` returns Permutation::Identity for the identity order.
    let permutation = Permutation::explicit(order, n)?;
    Ok(OrderingReport {
        chose_identity: permutation.is_identity(),
        permutation,
        sigma,
        sigma_identity,
        sigma_greedy,
        sigma_greedy_two_opt,
        sigma_identity_two_opt,
        two_opt_optimal,
        moves: search.moves,
        evaluations: search.evaluations,
    })
}

/// The smallest gain a 2-opt move must have to be applied, relative to 1 + the path length.
const GAIN_EPS: f64 = 1e-12;

struct Search<'g, G: ?Sized> {
    g: &'g G,
    n: usize,
    /// Neighbour lists, `k` per vector (fewer where the geometry returned fewer).
    cand: Vec<Vec<(f64, usize)>>,
    evaluations: u64,
    max_evaluations: u64,
    moves: u64,
}

impl<'g, G: FrameGeometry + ?Sized> Search<'g, G> {
    fn new(g: &'g G, options: &OrderingOptions) -> Self {
        let n = g.frame_size();
        let k = options.candidates.max(1).min(n.saturating_sub(1));
        let mut cand = Vec::with_capacity(n);
        let mut buf = Vec::new();
        for a in 0..n {
            g.candidates(a, k, &mut buf);
            buf.retain(|&(_, b)| b != a && b < n);
            cand.push(buf.clone());
        }
        Search {
            g,
            n,
            cand,
            evaluations: 0,
            max_evaluations: options.max_evaluations,
            moves: 0,
        }
    }

    /// Distance with the free node `n` at distance 0 from everything.
    fn dist(&mut self, a: usize, b: usize) -> f64 {
        if a >= self.n || b >= self.n {
            return 0.0;
        }
        self.evaluations += 1;
        self.g.distance(a, b)
    }

    fn path_length(&mut self, path: &[usize]) -> f64 {
        path.windows(2).map(|w| self.g.distance(w[0], w[1])).sum()
    }

    /// 2-opt from `path`: neighbour lists, then exhaustive passes for small N. Returns the path
    /// and whether it is proven 2-opt optimal.
    fn two_opt(&mut self, path: Vec<usize>, options: &OrderingOptions) -> (Vec<usize>, bool) {
        let mut tour = Tour::new(path, self.n);
        self.two_opt_neighbours(&mut tour);
        let optimal = self.n <= options.exhaustive_limit && self.two_opt_exhaustive(&mut tour);
        (tour.path(), optimal)
    }

    fn out_of_budget(&self) -> bool {
        self.evaluations >= self.max_evaluations
    }

    /// Greedy nearest neighbour from position 0.
    fn greedy(&mut self) -> Vec<usize> {
        let n = self.n;
        let mut visited = vec![false; n];
        // The unvisited positions, with each one's slot, for O(1) removal.
        let mut unvisited: Vec<usize> = (0..n).collect();
        let mut slot: Vec<usize> = (0..n).collect();
        let remove = |x: usize, unvisited: &mut Vec<usize>, slot: &mut Vec<usize>| {
            let s = slot[x];
            if let Some(&last) = unvisited.last() {
                unvisited.swap_remove(s);
                if last != x {
                    slot[last] = s;
                }
            }
        };
        let mut path = Vec::with_capacity(n);
        let mut cur = 0usize;
        visited[cur] = true;
        remove(cur, &mut unvisited, &mut slot);
        path.push(cur);
        while path.len() < n {
            let next = match self.cand[cur].iter().find(|&&(_, b)| !visited[b]) {
                Some(&(_, b)) => b,
                None => {
                    // Every neighbour is visited: scan the unvisited vectors.
                    let mut best = (f64::INFINITY, usize::MAX, usize::MAX);
                    for &b in unvisited.iter() {
                        self.evaluations += 1;
                        let key = (self.g.distance(cur, b), b.abs_diff(cur), b);
                        if key
                            .0
                            .total_cmp(&best.0)
                            .then(key.1.cmp(&best.1))
                            .then(key.2.cmp(&best.2))
                            == std::cmp::Ordering::Less
                        {
                            best = key;
                        }
                    }
                    best.2
                }
            };
            if next >= n || visited[next] {
                // Cannot happen (unvisited is non-empty); fall back to any unvisited vector.
                match unvisited.first() {
                    Some(&b) => cur = b,
                    None => break,
                }
            } else {
                cur = next;
            }
            visited[cur] = true;
            remove(cur, &mut unvisited, &mut slot);
            path.push(cur);
        }
        path
    }

    /// 2-opt with neighbour lists and don't-look bits.
    fn two_opt_neighbours(&mut self, tour: &mut Tour) {
        let n = self.n;
        let mut queue: std::collections::VecDeque<usize> = (0..n).collect();
        let mut queued = vec![true; n];
        let eps = GAIN_EPS;
        while let Some(a) = queue.pop_front() {
            queued[a] = false;
            if self.out_of_budget() {
                return;
            }
            let mut improved = false;
            'dirs: for forward in [true, false] {
                let b = if forward { tour.succ(a) } else { tour.pred(a) };
                let d_ab = self.dist(a, b);
                for i in 0..self.cand[a].len() {
                    let (d_ac, c) = self.cand[a][i];
                    let g1 = d_ab - d_ac;
                    if g1 <= eps {
                        break;
                    }
                    let d = if forward { tour.succ(c) } else { tour.pred(c) };
                    if c == b || d == a {
                        continue;
                    }
                    let gain = g1 + self.dist(c, d) - self.dist(b, d);
                    if gain > eps * (1.0 + d_ab) {
                        if forward {
                            tour.reverse(tour.pos[b], tour.pos[c]);
                        } else {
                            tour.reverse(tour.pos[a], tour.pos[d]);
                        }
                        self.moves += 1;
                        for x in [a, b, c, d] {
                            if x < n && !queued[x] {
                                queued[x] = true;
                                queue.push_back(x);
                            }
                        }
                        improved = true;
                        break 'dirs;
                    }
                }
            }
            if improved && !queued[a] {
                queued[a] = true;
                queue.push_back(a);
            }
        }
    }

    /// Exhaustive 2-opt passes until no move gains; true when it got there within the budget.
    /// Edge lengths are kept in an array (edge i joins array slots i and i + 1 mod m), so each
    /// pair of edges costs two distance evaluations.
    fn two_opt_exhaustive(&mut self, tour: &mut Tour) -> bool {
        let m = tour.order.len();
        let eps = GAIN_EPS;
        let mut edge: Vec<f64> = (0..m)
            .map(|i| {
                let (a, b) = (tour.order[i], tour.order[(i + 1) % m]);
                self.dist(a, b)
            })
            .collect();
        loop {
            let mut improved = false;
            for i in 0..m.saturating_sub(2) {
                for j in i + 2..m {
                    if self.out_of_budget() {
                        return false;
                    }
                    let (a, b) = (tour.order[i], tour.order[i + 1]);
                    let (c, d) = (tour.order[j], tour.order[(j + 1) % m]);
                    if d == a {
                        continue;
                    }
                    let (d_ab, d_cd) = (edge[i], edge[j]);
                    let d_ac = self.dist(a, c);
                    let d_bd = self.dist(b, d);
                    let gain = d_ab + d_cd - d_ac - d_bd;
                    if gain > eps * (1.0 + d_ab + d_cd) {
                        // Slots i+1..=j reversed: the edges strictly inside reverse their order,
                        // the two boundary edges become (a, c) and (b, d).
                        tour.reverse_direct(i + 1, j);
                        edge[i + 1..j].reverse();
                        edge[i] = d_ac;
                        edge[j] = d_bd;
                        self.moves += 1;
                        improved = true;
                    }
                }
            }
            if !improved {
                return true;
            }
        }
    }
}

/// A cyclic tour over the N positions and the free node N, in an array with each node's position.
struct Tour {
    order: Vec<usize>,
    pos: Vec<usize>,
}

impl Tour {
    fn new(path: Vec<usize>, n: usize) -> Self {
        let mut order = path;
        order.push(n);
        let mut pos = vec![0; n + 1];
        for (i, &x) in order.iter().enumerate() {
            if let Some(p) = pos.get_mut(x) {
                *p = i;
            }
        }
        Tour { order, pos }
    }

    fn succ(&self, x: usize) -> usize {
        let m = self.order.len();
        self.order[(self.pos[x] + 1) % m]
    }

    fn pred(&self, x: usize) -> usize {
        let m = self.order.len();
        self.order[(self.pos[x] + m - 1) % m]
    }

    /// Reverses the cyclic stretch from array index i forward to j (inclusive), or equivalently
    /// its complement, whichever is shorter.
    fn reverse(&mut self, i: usize, j: usize) {
        let m = self.order.len();
        let len = (j + m - i) % m + 1;
        let (mut i, mut j, len) = if 2 * len > m {
            // The complement j+1 .. i−1 gives the same cyclic tour (read backwards).
            ((j + 1) % m, (i + m - 1) % m, m - len)
        } else {
            (i, j, len)
        };
        for _ in 0..len / 2 {
            self.order.swap(i, j);
            self.pos[self.order[i]] = i;
            self.pos[self.order[j]] = j;
            i = (i + 1) % m;
            j = (j + m - 1) % m;
        }
    }

    /// Reverses array indices i..=j (i ≤ j) in place.
    fn reverse_direct(&mut self, i: usize, j: usize) {
        self.order[i..=j].reverse();
        for k in i..=j {
            self.pos[self.order[k]] = k;
        }
    }

    /// The path: the tour read forward from just after the free node.
    fn path(&self) -> Vec<usize> {
        let m = self.order.len();
        let free = m - 1;
        let start = self.pos[free];
        (1..m).map(|k| self.order[(start + k) % m]).collect()
    }
}

/// A frame given by its vectors as dense rows (row-major N×d): any frame, with brute-force
/// neighbour lists (O(N²·d) to build them) — for small frames and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseVectors {
    n: usize,
    d: usize,
    data: Vec<f64>,
}

impl DenseVectors {
    /// Wraps `data` (N rows of length `d`, row-major). Errors if d = 0 or the length is not a
    /// multiple of d.
    pub fn new(data: Vec<f64>, d: usize) -> Result<Self> {
        if d == 0 || data.len() % d != 0 {
            return Err(Error::param(format!(
                "dense frame data of length {} is not a whole number of rows of length {d}",
                data.len()
            )));
        }
        Ok(DenseVectors {
            n: data.len() / d,
            d,
            data,
        })
    }

    /// The harmonic frame's vectors, densely (O(N·d) memory).
    pub fn from_harmonic(frame: &HarmonicFrame) -> Result<Self> {
        let (n, d) = (frame.frame_size(), frame.dim());
        let mut data = vec![0.0; n * d];
        for (i, row) in data.chunks_exact_mut(d).enumerate() {
            frame.row(i + 1, row)?;
        }
        DenseVectors::new(data, d)
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    fn vector(&self, a: usize) -> &[f64] {
        self.data.get(a * self.d..(a + 1) * self.d).unwrap_or(&[])
    }
}

impl FrameGeometry for DenseVectors {
    fn frame_size(&self) -> usize {
        self.n
    }

    fn distance(&self, a: usize, b: usize) -> f64 {
        self.vector(a)
            .iter()
            .zip(self.vector(b))
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt()
    }
}

/// The harmonic frame's geometry from its Gram function: ‖e_a − e_b‖ depends only on a − b mod N,
/// so distances are O(1) and every vector has the same neighbour offsets (O(N log N) to build).
#[derive(Debug, Clone, PartialEq)]
pub struct HarmonicGeometry {
    n: usize,
    /// dist[k] = ‖e_{a} − e_{a+k}‖ for every a (indices mod N).
    dist: Vec<f64>,
    /// The offsets k = 1..N−1 sorted by dist[k] (then by the smaller of k and N − k).
    offsets: Vec<usize>,
}

impl HarmonicGeometry {
    /// Builds the geometry of `frame` (one inverse FFT for the Gram function).
    pub fn new(frame: &HarmonicFrame) -> Result<Self> {
        let n = frame.frame_size();
        let mut ws = frame.workspace();
        let g = frame.gram_function(&mut ws)?;
        let dist: Vec<f64> = g.iter().map(|&x| (2.0 - 2.0 * x).max(0.0).sqrt()).collect();
        let mut offsets: Vec<usize> = (1..n).collect();
        offsets.sort_by(|&x, &y| {
            dist[x]
                .total_cmp(&dist[y])
                .then(x.min(n - x).cmp(&y.min(n - y)))
                .then(x.cmp(&y))
        });
        Ok(HarmonicGeometry { n, dist, offsets })
    }
}

impl FrameGeometry for HarmonicGeometry {
    fn frame_size(&self) -> usize {
        self.n
    }

    fn distance(&self, a: usize, b: usize) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let k = (a % self.n + self.n - b % self.n) % self.n;
        self.dist.get(k).copied().unwrap_or(0.0)
    }

    fn candidates(&self, a: usize, k: usize, out: &mut Vec<(f64, usize)>) {
        out.clear();
        for &off in self.offsets.iter().take(k) {
            let b = (a + off) % self.n;
            out.push((self.distance(a, b), b));
        }
    }
}
