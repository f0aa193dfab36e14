//! One module per row of the results table, and what they share: the big input file
//! ([`Context`]) and the hub with its provider daemon ([`Network`]).

pub mod curl;
pub mod feeds;
pub mod latency;
pub mod latency_nats;
pub mod node_api;
pub mod s3;
pub mod store;
pub mod tasks;
pub mod transfer;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cluster::{Daemon, Hub, Person};

/// Inputs every row shares.
pub struct Context {
    pub kachery: PathBuf,
    pub work: PathBuf,
    /// Seeded pseudo-random bytes, `size` of them; incompressible, like recordings.
    pub input: PathBuf,
    pub size: u64,
    pub repeats: usize,
}

impl Context {
    /// Writes the input file (not timed). It stays in the page cache for the whole run on
    /// a machine with a few GiB free, so every row reads it from memory.
    pub fn prepare(kachery: &Path, work: &Path, size: u64, repeats: usize) -> anyhow::Result<Self> {
        let input = work.join("input.bin");
        write_pseudo_random(&input, size, 0x6b61_6368)?;
        Ok(Self {
            kachery: kachery.to_owned(),
            work: work.to_owned(),
            input,
            size,
            repeats: repeats.max(1),
        })
    }
}

/// Writes `size` bytes of xorshift output; different seeds give different bytes.
pub fn write_pseudo_random(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    // Spread the seed over all bits; xorshift needs a non-zero state.
    let mut state = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(0x2545_f491_4f6c_dd1d);
    if state == 0 {
        state = 1;
    }
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while written < size {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let take = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..take])?;
        written += take as u64;
    }
    out.flush()?;
    Ok(())
}

/// The hub, its two people and node A, which provides files in every channel.
pub struct Network {
    pub hub: Hub,
    /// Owns every channel, node A and the benchmark's own identities.
    pub alice: Person,
    /// Owns the requesting nodes.
    pub bob: Person,
    pub a: Daemon,
}

impl Network {
    pub async fn start(ctx: &Context) -> anyhow::Result<Self> {
        let hub = Hub::start(&ctx.kachery, &ctx.work)?;
        let alice = Person::sign_in(&hub.url, "alice@bench.invalid").await?;
        let bob = Person::sign_in(&hub.url, "bob@bench.invalid").await?;
        let a = Daemon::start(
            &ctx.kachery,
            &ctx.work.join("a"),
            &hub.url,
            &alice.email,
            "bench-A",
        )?;
        Ok(Self { hub, alice, bob, a })
    }
}
