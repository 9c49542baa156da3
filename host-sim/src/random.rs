//! Random bytes for WASI `random_get`: the operating system's by default, or
//! a seeded generator so that scenario runs repeat exactly.

/// Bytes drawn from the operating system at a time. A guest typically asks
/// for a nonce's worth per request, and a system call for each costs more
/// than the rest of `random_get`.
const OS_BLOCK: usize = 256;

/// A source of random bytes for one VM. Not `Clone`: two copies of the OS
/// source would hand out the same bytes.
#[derive(Debug)]
pub enum Rng {
    /// The operating system's source, through a block of bytes drawn ahead:
    /// `unused` counts the bytes at the block's end not handed out yet.
    Os {
        block: Box<[u8; OS_BLOCK]>,
        unused: usize,
    },
    /// SplitMix64: tiny, fast and good enough for reproducible test nonces.
    /// Not for secrets, and nothing the simulator does needs it to be.
    Seeded(u64),
}

impl Rng {
    /// A seeded generator distinct per worker, or the OS source.
    pub fn new(seed: Option<u64>, worker: usize) -> Self {
        match seed {
            Some(seed) => Rng::Seeded(seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => Rng::Os {
                block: Box::new([0; OS_BLOCK]),
                unused: 0,
            },
        }
    }

    /// Fills `out`; fails only if the operating system's source fails.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), getrandom::Error> {
        match self {
            Rng::Os { block, unused } => {
                if out.len() > OS_BLOCK {
                    return getrandom::fill(out);
                }
                if out.len() > *unused {
                    getrandom::fill(block.as_mut_slice())?;
                    *unused = OS_BLOCK;
                }
                let start = OS_BLOCK - *unused;
                let Some(fresh) = block.get(start..start + out.len()) else {
                    return getrandom::fill(out);
                };
                out.copy_from_slice(fresh);
                *unused -= out.len();
                Ok(())
            }
            Rng::Seeded(state) => {
                for chunk in out.chunks_mut(8) {
                    let word = splitmix64(state).to_le_bytes();
                    for (slot, byte) in chunk.iter_mut().zip(word) {
                        *slot = byte;
                    }
                }
                Ok(())
            }
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_source_never_hands_out_a_byte_twice() {
        let mut rng = Rng::new(None, 0);
        let mut seen = Vec::new();
        for len in [0, 1, 16, 100, 200, 255, 256, 300, 32] {
            let mut out = vec![0; len];
            rng.fill(&mut out).unwrap();
            seen.push(out);
        }
        // 16-byte windows of random data do not repeat by chance.
        let all: Vec<u8> = seen.concat();
        let windows: std::collections::HashSet<&[u8]> = all.windows(16).collect();
        assert_eq!(windows.len(), all.len() - 15);
    }

    #[test]
    fn seeded_sources_repeat() {
        let (mut a, mut b) = (Rng::new(Some(7), 1), Rng::new(Some(7), 1));
        let (mut x, mut y) = ([0; 40], [0; 40]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, [0; 40]);
    }
}
