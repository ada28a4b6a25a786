//! Helpers shared by the integration tests and benches.
#![allow(dead_code)]

use onebox::Cluster;

/// A cluster of `threads` pool threads, ignoring the `ONEBOX_*` environment.
pub fn cluster(threads: usize) -> Cluster {
    Cluster::builder()
        .threads(threads)
        .ignore_env()
        .build()
        .expect("a test cluster")
}

/// SplitMix64: a tiny, well-mixed generator for reproducible test data.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..below` (`below` > 0).
    pub fn below(&mut self, below: usize) -> usize {
        (self.next_u64() % below as u64) as usize
    }

    /// A float in [-1, 1).
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A random DAG of `n` nodes: node i depends on up to 3 earlier nodes.
pub fn random_dag(n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|i| {
            if i == 0 {
                vec![]
            } else {
                (0..rng.below(4)).map(|_| rng.below(i)).collect()
            }
        })
        .collect()
}

/// A field of `/proc/self/status` (`"VmHWM:"`, `"VmRSS:"`), in bytes; `None` off Linux.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of this process, in bytes (`VmHWM`).
pub fn peak_rss() -> Option<u64> {
    status_bytes("VmHWM:")
}
