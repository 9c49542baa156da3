//! Random bytes for WASI `random_get`: the operating system's by default, or
//! a seeded generator so that scenario runs repeat exactly.

/// A source of random bytes for one VM.
#[derive(Debug, Clone)]
pub enum Rng {
    Os,
    /// SplitMix64: tiny, fast and good enough for reproducible test nonces.
    /// Not for secrets, and nothing the simulator does needs it to be.
    Seeded(u64),
}

impl Rng {
    /// A seeded generator distinct per worker, or the OS source.
    pub fn new(seed: Option<u64>, worker: usize) -> Self {
        match seed {
            Some(seed) => Rng::Seeded(seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => Rng::Os,
        }
    }

    /// Fills `out`; fails only if the operating system's source fails.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), getrandom::Error> {
        match self {
            Rng::Os => getrandom::fill(out),
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
