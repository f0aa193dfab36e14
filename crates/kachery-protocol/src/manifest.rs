//! Chunking and the byte-exact manifest [C] (SPEC §14.2).
//!
//! A file larger than [`CHUNK_SIZE`] travels as chunks plus a manifest listing them. The
//! manifest's bytes are written by hand rather than by a serializer because its SHA-1 is
//! part of every URI ever published: the same file must always give the same bytes.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::ids::Sha1Hash;

/// Chunk size in bytes [C]. A file of at most this size has no manifest.
pub const CHUNK_SIZE: u64 = 20_000_000;

/// One chunk: bytes `[start, end)` of the whole file, and their SHA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestChunk {
    pub start: u64,
    pub end: u64,
    pub sha1: Sha1Hash,
}

impl ManifestChunk {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// The chunk list of a file larger than one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub size: u64,
    pub sha1: Sha1Hash,
    pub chunks: Vec<ManifestChunk>,
}

/// Why bytes are not a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Shape(String),
    #[error("manifest chunks are not contiguous from 0 in {CHUNK_SIZE}-byte steps")]
    BadChunkLayout,
    #[error("manifest lists no chunks or describes a file that fits in one chunk")]
    NotChunked,
    #[error("manifest bytes are not in canonical form")]
    NotCanonical,
}

/// The byte ranges `[start, end)` a file of `size` bytes is cut into.
pub fn chunk_ranges(size: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..size.div_ceil(CHUNK_SIZE)).map(move |idx| {
        let start = idx * CHUNK_SIZE;
        (start, (start + CHUNK_SIZE).min(size))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireManifest {
    size: u64,
    sha1: Sha1Hash,
    chunks: Vec<WireChunk>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChunk {
    start: u64,
    end: u64,
    sha1: Sha1Hash,
}

impl Manifest {
    /// The exact manifest bytes [C]: this key order, no whitespace, decimal integers.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = String::with_capacity(64 + self.chunks.len() * 80);
        write!(
            text,
            r#"{{"size":{},"sha1":"{}","chunks":["#,
            self.size, self.sha1
        )
        .expect("writing to a String cannot fail");
        for (idx, chunk) in self.chunks.iter().enumerate() {
            if idx > 0 {
                text.push(',');
            }
            write!(
                text,
                r#"{{"start":{},"end":{},"sha1":"{}"}}"#,
                chunk.start, chunk.end, chunk.sha1
            )
            .expect("writing to a String cannot fail");
        }
        text.push_str("]}");
        text.into_bytes()
    }

    /// The manifest's own address, the `manifest=` value of the file's URI.
    pub fn manifest_sha1(&self) -> Sha1Hash {
        Sha1Hash::of(&self.to_bytes())
    }

    /// Parses and validates manifest bytes: chunks contiguous from 0, every chunk but the
    /// last exactly [`CHUNK_SIZE`], last end = size, more than one chunk's worth of data.
    /// The whole-file SHA-1 can only be checked after the chunks are assembled.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let wire: WireManifest =
            serde_json::from_slice(bytes).map_err(|err| ManifestError::Shape(err.to_string()))?;
        let manifest = Manifest {
            size: wire.size,
            sha1: wire.sha1,
            chunks: wire
                .chunks
                .into_iter()
                .map(|chunk| ManifestChunk {
                    start: chunk.start,
                    end: chunk.end,
                    sha1: chunk.sha1,
                })
                .collect(),
        };
        if manifest.size <= CHUNK_SIZE || manifest.chunks.is_empty() {
            return Err(ManifestError::NotChunked);
        }
        let layout_ok = manifest.chunks.len() as u64 == manifest.size.div_ceil(CHUNK_SIZE)
            && manifest
                .chunks
                .iter()
                .zip(chunk_ranges(manifest.size))
                .all(|(chunk, (start, end))| chunk.start == start && chunk.end == end);
        if !layout_ok {
            return Err(ManifestError::BadChunkLayout);
        }
        Ok(manifest)
    }

    /// Like [`Manifest::parse`], and also requires the bytes to be exactly what
    /// [`Manifest::to_bytes`] writes, so the hash in a URI names one manifest only.
    pub fn parse_canonical(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest = Self::parse(bytes)?;
        if manifest.to_bytes() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> Sha1Hash {
        Sha1Hash::from_bytes([byte; 20])
    }

    #[test]
    fn chunk_ranges_cover_the_file() {
        assert_eq!(chunk_ranges(0).count(), 0);
        assert_eq!(
            chunk_ranges(CHUNK_SIZE).collect::<Vec<_>>(),
            vec![(0, CHUNK_SIZE)]
        );
        assert_eq!(
            chunk_ranges(CHUNK_SIZE + 1).collect::<Vec<_>>(),
            vec![(0, CHUNK_SIZE), (CHUNK_SIZE, CHUNK_SIZE + 1)]
        );
        assert_eq!(chunk_ranges(3 * CHUNK_SIZE).count(), 3);
    }

    #[test]
    fn manifest_bytes_are_exact() {
        let manifest = Manifest {
            size: CHUNK_SIZE + 1,
            sha1: hash(0xaa),
            chunks: vec![
                ManifestChunk {
                    start: 0,
                    end: CHUNK_SIZE,
                    sha1: hash(0x01),
                },
                ManifestChunk {
                    start: CHUNK_SIZE,
                    end: CHUNK_SIZE + 1,
                    sha1: hash(0x02),
                },
            ],
        };
        let expected = format!(
            concat!(
                r#"{{"size":20000001,"sha1":"{}","chunks":["#,
                r#"{{"start":0,"end":20000000,"sha1":"{}"}},"#,
                r#"{{"start":20000000,"end":20000001,"sha1":"{}"}}]}}"#
            ),
            "aa".repeat(20),
            "01".repeat(20),
            "02".repeat(20)
        );
        assert_eq!(String::from_utf8(manifest.to_bytes()).unwrap(), expected);
        assert_eq!(
            Manifest::parse_canonical(expected.as_bytes()).unwrap(),
            manifest
        );
    }

    #[test]
    fn parse_rejects_bad_layouts() {
        let bad_gap = format!(
            r#"{{"size":20000002,"sha1":"{h}","chunks":[{{"start":0,"end":20000000,"sha1":"{h}"}},{{"start":20000001,"end":20000002,"sha1":"{h}"}}]}}"#,
            h = "ab".repeat(20)
        );
        assert_eq!(
            Manifest::parse(bad_gap.as_bytes()),
            Err(ManifestError::BadChunkLayout)
        );

        let single = format!(
            r#"{{"size":5,"sha1":"{h}","chunks":[{{"start":0,"end":5,"sha1":"{h}"}}]}}"#,
            h = "ab".repeat(20)
        );
        assert_eq!(
            Manifest::parse(single.as_bytes()),
            Err(ManifestError::NotChunked)
        );
        assert!(matches!(
            Manifest::parse(b"not json"),
            Err(ManifestError::Shape(_))
        ));

        let spaced = format!(
            r#"{{"size": 20000001,"sha1":"{h}","chunks":[{{"start":0,"end":20000000,"sha1":"{h}"}},{{"start":20000000,"end":20000001,"sha1":"{h}"}}]}}"#,
            h = "ab".repeat(20)
        );
        assert!(Manifest::parse(spaced.as_bytes()).is_ok());
        assert_eq!(
            Manifest::parse_canonical(spaced.as_bytes()),
            Err(ManifestError::NotCanonical)
        );
    }
}
