//! Sharding: the target × port space split among machines with no coordination.
//!
//! Every (host, port) pair has an index `host × ports + port` in `[0, N)`. A keyed
//! pseudo-random permutation of `[0, N)` (a four-round Feistel network on the smallest
//! even-width power of two that holds N, with cycle-walking back into range) maps each index
//! to a position; shard `i` of `n` takes the pairs whose position is `i - 1` modulo `n`. Every
//! pair therefore lands in exactly one shard, and because the permutation is a bijection the
//! shards differ in size by at most one pair. Machines that share the targets, the ports and
//! `--seed` agree on the split without talking to each other.

use crate::{Error, Result};

/// A keyed permutation of `[0, n)`.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half: u32,
    keys: [u64; 4],
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Permutation {
    /// The permutation of `[0, n)` for a seed.
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half = bits.div_ceil(2).max(1);
        let mut k = seed;
        let mut keys = [0u64; 4];
        for key in &mut keys {
            k = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *key = mix(k);
        }
        Permutation { n, half, keys }
    }

    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half) - 1;
        let (mut l, mut r) = (x >> self.half, x & mask);
        for k in self.keys {
            let f = mix(r ^ k) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half) | r
    }

    /// The position of `x` (which must be below `n`).
    pub fn apply(&self, x: u64) -> u64 {
        let mut y = self.encrypt(x);
        // the Feistel domain holds at most 4n values; walking the cycle returns into range
        while y >= self.n {
            y = self.encrypt(y);
        }
        y
    }
}

/// Shard `index` (from 1) of `count`, as `--shard I/N` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 1.
    pub index: u64,
    /// How many.
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::BadShard { given: s.to_string() };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Decides which (host, port) pairs belong to one shard.
#[derive(Debug, Clone)]
pub struct Sharder {
    perm: Permutation,
    ports: u64,
    shard: Shard,
}

impl Sharder {
    /// For `hosts × ports` pairs.
    pub fn new(shard: Shard, hosts: u128, ports: usize, seed: u64) -> Result<Sharder> {
        let total = hosts
            .checked_mul(ports as u128)
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t < (1u64 << 62))
            .ok_or(Error::BadShard {
                given: format!("{}/{} of {hosts} hosts x {ports} ports: too large", shard.index, shard.count),
            })?;
        Ok(Sharder {
            perm: Permutation::new(total.max(1), seed ^ 0x5348_4152_4421_5345),
            ports: ports as u64,
            shard,
        })
    }

    /// Whether port number `port_index` (its place in the port list) of host `host_index` is
    /// this shard's.
    pub fn mine(&self, host_index: u64, port_index: usize) -> bool {
        let g = host_index * self.ports + port_index as u64;
        self.perm.apply(g) % self.shard.count == self.shard.index - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permutation_is_a_bijection_for_awkward_sizes() {
        for n in [1u64, 2, 3, 5, 7, 100, 255, 256, 257, 1000, 4097] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x);
                assert!(y < n);
                assert!(!seen[y as usize], "n={n}: {y} twice");
                seen[y as usize] = true;
            }
        }
        assert_ne!(
            (0..100).map(|x| Permutation::new(100, 1).apply(x)).collect::<Vec<_>>(),
            (0..100).map(|x| Permutation::new(100, 2).apply(x)).collect::<Vec<_>>(),
            "the key matters"
        );
    }

    #[test]
    fn shards_partition_the_space_evenly() {
        let (hosts, ports) = (37u128, 101usize);
        for count in [1u64, 2, 3, 7] {
            let mut owner = vec![0u64; 37 * 101];
            for index in 1..=count {
                let s = Sharder::new(Shard { index, count }, hosts, ports, 9).unwrap();
                for h in 0..37u64 {
                    for p in 0..ports {
                        if s.mine(h, p) {
                            assert_eq!(owner[(h as usize) * ports + p], 0, "overlap");
                            owner[(h as usize) * ports + p] = index;
                        }
                    }
                }
            }
            assert!(owner.iter().all(|&o| o != 0), "every pair has a shard");
            let sizes: Vec<usize> = (1..=count).map(|i| owner.iter().filter(|&&o| o == i).count()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn shard_specs() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { index: 2, count: 3 });
        for bad in ["0/3", "4/3", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
