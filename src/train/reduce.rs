//! The fixed-order reduction tree over micro-shards.
//!
//! A global batch is cut into `m` micro-shards, numbered `0..m`. Their gradient sums are added
//! in one fixed binary tree: node `(level, k)` covers the micro-shards
//! `k * 2^level .. (k + 1) * 2^level` (cut at `m`), and its value is `left + right` of its two
//! children `(level - 1, 2k)` and `(level - 1, 2k + 1)`, or just `left` when the right child
//! covers nothing. The root is `(levels(m), 0)`.
//!
//! A replica that owns a contiguous range of micro-shards computes the largest whole tree
//! nodes inside its range (at most two per level), and the all-reduce finishes the tree from
//! those nodes. Every addition therefore happens on the same operands in the same order, however
//! the micro-shards were spread over replicas: the sum is bit-identical for any replica count.

use std::collections::HashMap;
use std::ops::Range;

use super::Float;
use crate::error::{Error, Result};

/// One tree node's value: the summed gradient and summed loss of its micro-shards.
#[derive(Clone, Debug)]
pub(crate) struct Node<F> {
    pub(crate) level: u32,
    pub(crate) index: usize,
    pub(crate) grad: Vec<F>,
    pub(crate) loss: f64,
}

/// The number of levels above the leaves for `m` micro-shards: the smallest `L` with
/// `2^L >= m`.
pub(crate) fn levels(m: usize) -> u32 {
    m.max(1).next_power_of_two().trailing_zeros()
}

/// The whole tree nodes that tile `range` (greedy: at each position the highest aligned node
/// that still fits).
pub(crate) fn cover(range: Range<usize>) -> Vec<(u32, usize)> {
    let mut nodes = Vec::new();
    let mut i = range.start;
    while i < range.end {
        let mut level = 0u32;
        while level < usize::BITS - 1 {
            let size = 1usize << (level + 1);
            if i.is_multiple_of(size) && i + size <= range.end {
                level += 1;
            } else {
                break;
            }
        }
        nodes.push((level, i >> level));
        i += 1usize << level;
    }
    nodes
}

/// Adds `right` into `left`, element by element.
fn add_into<F: Float>(left: &mut Node<F>, right: Node<F>) {
    for (a, b) in left.grad.iter_mut().zip(&right.grad) {
        *a += *b;
    }
    left.loss += right.loss;
}

/// Where [`node_sum`] gets a node's value without adding its children: `Ok(Some(node))` to use
/// it as is, `Ok(None)` to build it from its children (a leaf cannot be built).
pub(crate) type Source<'a, F> = dyn FnMut(u32, usize) -> Result<Option<Node<F>>> + 'a;

/// The value of node `(level, index)` of the tree over `m` micro-shards: from `source` when it
/// has it, else the sum of its children's values.
pub(crate) fn node_sum<F: Float>(
    level: u32,
    index: usize,
    m: usize,
    source: &mut Source<'_, F>,
) -> Result<Node<F>> {
    if let Some(node) = source(level, index)? {
        return Ok(node);
    }
    if level == 0 {
        return Err(Error::Invalid(format!(
            "all-reduce: no replica computed micro-shard {index} of {m}"
        )));
    }
    let mut left = node_sum(level - 1, 2 * index, m, source)?;
    let right_start = (2 * index + 1) << (level - 1);
    if right_start < m {
        let right = node_sum(level - 1, 2 * index + 1, m, source)?;
        add_into(&mut left, right);
    }
    left.level = level;
    left.index = index;
    Ok(left)
}

/// Finishes the tree for `m` micro-shards from the nodes the replicas computed.
pub(crate) fn finish<F: Float>(m: usize, parts: Vec<Node<F>>) -> Result<Node<F>> {
    let mut known: HashMap<(u32, usize), Node<F>> =
        parts.into_iter().map(|n| ((n.level, n.index), n)).collect();
    let root = node_sum(levels(m), 0, m, &mut |level, index| {
        Ok(known.remove(&(level, index)))
    })?;
    if let Some(&(level, index)) = known.keys().next() {
        return Err(Error::Invalid(format!(
            "all-reduce: tree node ({level}, {index}) was computed but is not part of the tree \
             of {m} micro-shards"
        )));
    }
    Ok(root)
}

/// The tree over elements `range` of the replicas' nodes only: the same additions on those
/// elements as [`finish`], so pieces finished separately are the whole result's pieces.
pub(crate) fn finish_range<F: Float>(
    m: usize,
    parts: &[Node<F>],
    range: Range<usize>,
) -> Result<Node<F>> {
    let pieces = parts
        .iter()
        .map(|n| Node {
            level: n.level,
            index: n.index,
            grad: n.grad[range.clone()].to_vec(),
            loss: n.loss,
        })
        .collect();
    finish(m, pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(values: &[f64]) -> impl FnMut(u32, usize) -> Result<Option<Node<f64>>> + '_ {
        move |level, i| {
            Ok((level == 0).then(|| Node {
                level: 0,
                index: i,
                grad: vec![values[i], -values[i]],
                loss: values[i],
            }))
        }
    }

    #[test]
    fn cover_tiles_ranges_with_aligned_nodes() {
        assert_eq!(cover(0..8), vec![(3, 0)]);
        assert_eq!(cover(0..5), vec![(2, 0), (0, 4)]);
        assert_eq!(cover(3..11), vec![(0, 3), (2, 1), (1, 4), (0, 10)]);
        assert!(cover(4..4).is_empty());
        for a in 0..20 {
            for b in a..20 {
                let mut covered = Vec::new();
                for (l, k) in cover(a..b) {
                    covered.extend((k << l)..((k + 1) << l));
                }
                assert_eq!(covered, (a..b).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn levels_of_counts() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(levels), [0, 1, 2, 2, 3, 3, 4]);
    }

    /// Values chosen so that float addition order matters; any split into contiguous replica
    /// ranges gives exactly the whole-tree result.
    #[test]
    fn any_split_gives_the_same_bits() {
        let values: Vec<f64> = (0..13)
            .map(|i| 1.0 / (i as f64 + 0.3) * 1e16f64.powi(i % 3))
            .collect();
        let m = values.len();
        let whole = node_sum(levels(m), 0, m, &mut leaf(&values)).unwrap();
        for r in 1..=m + 2 {
            let mut parts = Vec::new();
            for j in 0..r {
                let range = (j * m / r)..((j + 1) * m / r);
                for (l, k) in cover(range) {
                    parts.push(node_sum(l, k, m, &mut leaf(&values)).unwrap());
                }
            }
            let root = finish(m, parts).unwrap();
            assert_eq!(root.grad[0].to_bits(), whole.grad[0].to_bits(), "r = {r}");
            assert_eq!(root.loss.to_bits(), whole.loss.to_bits());
        }
        let seq: f64 = values.iter().sum();
        assert!((whole.loss - seq).abs() <= 1e-6 * seq.abs());
    }

    #[test]
    fn pieces_finished_apart_are_the_pieces_of_the_whole() {
        let values: Vec<f64> = (0..9)
            .map(|i| (i as f64 + 0.1).recip() * 1e12f64.powi(i % 2))
            .collect();
        let m = values.len();
        let parts: Vec<Node<f64>> = cover(0..4)
            .into_iter()
            .chain(cover(4..m))
            .map(|(l, k)| node_sum(l, k, m, &mut leaf(&values)).unwrap())
            .collect();
        let whole = finish(m, parts.clone()).unwrap();
        let a = finish_range(m, &parts, 0..1).unwrap();
        let b = finish_range(m, &parts, 1..2).unwrap();
        assert_eq!([a.grad[0], b.grad[0]], [whole.grad[0], whole.grad[1]]);
        assert!(finish_range(m, &parts, 2..2).unwrap().grad.is_empty());
    }

    #[test]
    fn a_missing_node_is_an_error() {
        let values = [1.0, 2.0, 3.0];
        let part = node_sum(0, 0, 3, &mut leaf(&values)).unwrap();
        assert!(finish(3, vec![part]).is_err());
    }
}
