//! Hashing a file and each of its 20,000,000-byte chunks in one pass (SPEC §14.2).
//!
//! [`ContentHasher`] takes the bytes in whatever pieces they arrive and cuts them at chunk
//! boundaries itself, so callers can read with any buffer size. [`copy_hashing`] is the
//! blocking read-hash-write loop behind every ingest: the source is read exactly once.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use kachery_protocol::manifest::chunk_ranges;
use kachery_protocol::{CHUNK_SIZE, Manifest, ManifestChunk, Sha1Hash};
use sha1::{Digest, Sha1};

/// Read buffer of the copy loop: large enough that syscalls cost little next to hashing.
pub(crate) const COPY_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// What hashing a whole stream of bytes produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digests {
    pub(crate) sha1: Sha1Hash,
    pub(crate) size: u64,
    /// The SHA-1 of each chunk in order; one entry for a non-empty file of at most one chunk.
    pub(crate) chunk_sha1s: Vec<Sha1Hash>,
}

impl Digests {
    /// The manifest of a file larger than one chunk; `None` for smaller files.
    pub(crate) fn manifest(&self) -> Option<Manifest> {
        if self.size <= CHUNK_SIZE {
            return None;
        }
        let chunks = chunk_ranges(self.size)
            .zip(&self.chunk_sha1s)
            .map(|((start, end), sha1)| ManifestChunk {
                start,
                end,
                sha1: *sha1,
            })
            .collect();
        Some(Manifest {
            size: self.size,
            sha1: self.sha1,
            chunks,
        })
    }
}

/// Hashes a stream as a whole and in chunks at the same time.
pub(crate) struct ContentHasher {
    whole: Sha1,
    chunk: Sha1,
    chunk_filled: u64,
    size: u64,
    chunk_sha1s: Vec<Sha1Hash>,
}

impl ContentHasher {
    pub(crate) fn new() -> Self {
        Self {
            whole: Sha1::new(),
            chunk: Sha1::new(),
            chunk_filled: 0,
            size: 0,
            chunk_sha1s: Vec::new(),
        }
    }

    /// Bytes hashed so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        self.size += data.len() as u64;

        while !data.is_empty() {
            let room = usize::try_from(CHUNK_SIZE - self.chunk_filled).unwrap_or(usize::MAX);
            let (head, rest) = data.split_at(room.min(data.len()));
            self.chunk.update(head);
            self.chunk_filled += head.len() as u64;
            if self.chunk_filled == CHUNK_SIZE {
                self.chunk_sha1s.push(finish_sha1(&mut self.chunk));
                self.chunk_filled = 0;
            }
            data = rest;
        }
    }

    pub(crate) fn finish(mut self) -> Digests {
        if self.chunk_filled > 0 {
            self.chunk_sha1s.push(finish_sha1(&mut self.chunk));
        }
        Digests {
            sha1: Sha1Hash::from_bytes(self.whole.finalize().into()),
            size: self.size,
            chunk_sha1s: self.chunk_sha1s,
        }
    }
}

fn finish_sha1(hasher: &mut Sha1) -> Sha1Hash {
    Sha1Hash::from_bytes(hasher.finalize_reset().into())
}

/// The SHA-1 of `data` (blocking; chunk-sized inputs take some milliseconds).
pub(crate) fn sha1_of(data: &[u8]) -> Sha1Hash {
    Sha1Hash::from_bytes(Sha1::digest(data).into())
}

/// Which side of [`copy_hashing`] failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(io::Error),
    Write(io::Error),
    Cancelled,
}

/// Inputs at least this large are copied with hashing on a second thread.
const PIPELINE_MIN_BYTES: u64 = 2 * COPY_BUFFER_BYTES as u64;

/// Buffers in flight between the copying and the hashing thread.
const PIPELINE_BUFFERS: usize = 4;

/// Copies `source` into `sink` while hashing it; syncing is left to the caller.
/// `on_progress` gets the bytes copied after every buffer; `cancel` is checked between
/// buffers. `size_hint` (the expected length, if known) picks the strategy: large inputs
/// are hashed on a second thread while this one reads and writes, so hashing twice (whole
/// and chunks) costs no wall time on a machine with two free cores.
pub(crate) fn copy_hashing(
    source: &mut (impl Read + Send),
    sink: &mut (impl Write + Send),
    size_hint: Option<u64>,
    cancel: &AtomicBool,
    on_progress: impl FnMut(u64),
) -> Result<Digests, CopyError> {
    if size_hint.is_some_and(|size| size >= PIPELINE_MIN_BYTES) {
        copy_hashing_pipelined(source, sink, cancel, on_progress)
    } else {
        copy_hashing_sequential(source, sink, cancel, on_progress)
    }
}

fn copy_hashing_sequential(
    source: &mut impl Read,
    sink: &mut impl Write,
    cancel: &AtomicBool,
    mut on_progress: impl FnMut(u64),
) -> Result<Digests, CopyError> {
    let mut hasher = ContentHasher::new();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];

    while let Some(n_read) = read_next(source, &mut buffer, cancel)? {
        let data = &buffer[..n_read];
        hasher.update(data);
        sink.write_all(data).map_err(CopyError::Write)?;
        on_progress(hasher.size());
    }

    Ok(hasher.finish())
}

/// This thread reads and writes; a scoped thread hashes. Buffers travel to the hasher and
/// back, so memory stays at [`PIPELINE_BUFFERS`] buffers whatever the file size.
fn copy_hashing_pipelined(
    source: &mut (impl Read + Send),
    sink: &mut (impl Write + Send),
    cancel: &AtomicBool,
    mut on_progress: impl FnMut(u64),
) -> Result<Digests, CopyError> {
    let (filled_tx, filled_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(PIPELINE_BUFFERS);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..PIPELINE_BUFFERS {
        free_tx
            .send(vec![0u8; COPY_BUFFER_BYTES])
            .expect("receiver is alive");
    }

    std::thread::scope(|scope| {
        let hashing = scope.spawn(move || {
            let mut hasher = ContentHasher::new();
            for (buffer, len) in filled_rx {
                hasher.update(&buffer[..len]);
                // The copying side may have stopped early; then nobody wants it back.
                let _ = free_tx.send(buffer);
            }
            hasher.finish()
        });

        let copy = || {
            let mut n_copied = 0u64;
            loop {
                let mut buffer = free_rx.recv().expect("the hashing thread returns buffers");
                let Some(n_read) = read_next(source, &mut buffer, cancel)? else {
                    break;
                };
                sink.write_all(&buffer[..n_read])
                    .map_err(CopyError::Write)?;
                n_copied += n_read as u64;
                filled_tx
                    .send((buffer, n_read))
                    .expect("the hashing thread runs until we stop");
                on_progress(n_copied);
            }
            drop(filled_tx);
            Ok(n_copied)
        };
        let copied = copy();

        let digests = hashing.join().expect("hashing does not panic");
        copied.map(|n_copied: u64| {
            debug_assert_eq!(n_copied, digests.size);
            digests
        })
    })
}

/// Fills `buffer` with the next read; `None` at the end of the input.
fn read_next(
    source: &mut impl Read,
    buffer: &mut [u8],
    cancel: &AtomicBool,
) -> Result<Option<usize>, CopyError> {
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Cancelled);
        }
        match source.read(buffer) {
            Ok(0) => return Ok(None),
            Ok(n_read) => return Ok(Some(n_read)),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(CopyError::Read(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_hashes_do_not_depend_on_piece_sizes() {
        let data: Vec<u8> = (0..CHUNK_SIZE as usize + 1234)
            .map(|i| (i % 251) as u8)
            .collect();

        let mut in_one = ContentHasher::new();
        in_one.update(&data);
        let in_one = in_one.finish();

        let mut in_pieces = ContentHasher::new();
        for piece in data.chunks(999_983) {
            in_pieces.update(piece);
        }
        assert_eq!(in_pieces.finish(), in_one);

        assert_eq!(in_one.sha1, sha1_of(&data));
        assert_eq!(in_one.chunk_sha1s.len(), 2);
        assert_eq!(in_one.chunk_sha1s[0], sha1_of(&data[..CHUNK_SIZE as usize]));
        assert_eq!(in_one.chunk_sha1s[1], sha1_of(&data[CHUNK_SIZE as usize..]));
        assert!(in_one.manifest().is_some());
    }

    #[test]
    fn small_inputs_have_no_manifest() {
        let empty = ContentHasher::new().finish();
        assert_eq!(
            empty.sha1.to_hex(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert!(empty.chunk_sha1s.is_empty());
        assert_eq!(empty.manifest(), None);

        let mut abc = ContentHasher::new();
        abc.update(b"abc");
        let abc = abc.finish();
        assert_eq!(
            abc.sha1.to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(abc.chunk_sha1s, vec![abc.sha1]);
        assert_eq!(abc.manifest(), None);
    }

    #[test]
    fn copy_stops_when_cancelled() {
        let cancel = AtomicBool::new(true);
        let result = copy_hashing(&mut &b"data"[..], &mut Vec::new(), None, &cancel, |_| {});
        assert!(matches!(result, Err(CopyError::Cancelled)));
    }

    #[test]
    fn pipelined_and_sequential_copies_agree() {
        let data: Vec<u8> = (0..3 * COPY_BUFFER_BYTES + 17)
            .map(|i| (i % 253) as u8)
            .collect();
        let never = AtomicBool::new(false);
        let mut results = Vec::new();
        for size_hint in [None, Some(data.len() as u64)] {
            let mut copied = Vec::new();
            let mut last_progress = 0;
            let digests = copy_hashing(&mut &data[..], &mut copied, size_hint, &never, |n| {
                last_progress = n;
            })
            .unwrap();
            assert!(copied == data);
            assert_eq!(last_progress, data.len() as u64);
            results.push(digests);
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0].sha1, sha1_of(&data));
    }
}
