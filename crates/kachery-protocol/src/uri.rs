//! `sha1://` and `feed://` URIs [C] (SPEC §14.1).
//!
//! `sha1://<sha1>[/<label>][?manifest=<sha1>]`: the label is informational and
//! percent-encoded, a `.ext` suffix on the hash is stripped, unknown query parameters are
//! ignored (the original wrote `chunkOf` there). `sha1dir://` is named as unsupported.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::ids::{NodeId, Sha1Hash};

/// Characters escaped in a URI label: everything that would end or split the path.
const LABEL_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b'"')
    .add(b'<')
    .add(b'>');

/// Why a string is not a usable kachery URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("unsupported URI scheme in {0:?}: expected sha1:// or feed://")]
    UnsupportedScheme(String),
    #[error("sha1dir:// URIs are not supported by this version of kachery")]
    DirectoryUnsupported,
    #[error("malformed URI {uri:?}: {reason}")]
    Malformed { uri: String, reason: String },
}

/// A file URI: the content hash, an optional label, and the manifest for large files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUri {
    pub sha1: Sha1Hash,
    pub label: Option<String>,
    pub manifest: Option<Sha1Hash>,
}

/// A feed URI: the feed id and optionally one subfeed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedUri {
    pub feed_id: NodeId,
    pub subfeed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KacheryUri {
    File(FileUri),
    Feed(FeedUri),
}

fn malformed(uri: &str, reason: impl Into<String>) -> UriError {
    UriError::Malformed {
        uri: uri.chars().take(200).collect(),
        reason: reason.into(),
    }
}

impl KacheryUri {
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("sha1://") {
            return parse_file(text, rest).map(KacheryUri::File);
        }
        if let Some(rest) = text.strip_prefix("feed://") {
            return parse_feed(text, rest).map(KacheryUri::Feed);
        }
        if text.starts_with("sha1dir://") {
            return Err(UriError::DirectoryUnsupported);
        }
        Err(UriError::UnsupportedScheme(
            text.chars().take(200).collect(),
        ))
    }
}

impl FileUri {
    pub fn parse(text: &str) -> Result<Self, UriError> {
        match KacheryUri::parse(text)? {
            KacheryUri::File(uri) => Ok(uri),
            KacheryUri::Feed(_) => Err(malformed(text, "a feed URI names no file")),
        }
    }

    /// The URI `kachery store` prints for a file named `label`.
    pub fn new(sha1: Sha1Hash, label: Option<&str>, manifest: Option<Sha1Hash>) -> Self {
        let label = label.filter(|label| !label.is_empty()).map(str::to_owned);
        Self {
            sha1,
            label,
            manifest,
        }
    }
}

fn parse_file(uri: &str, rest: &str) -> Result<FileUri, UriError> {
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let (hash_segment, label) = match path.split_once('/') {
        Some((hash, label)) => (hash, Some(label)),
        None => (path, None),
    };
    let hash_text = hash_segment
        .split_once('.')
        .map_or(hash_segment, |(hash, _ext)| hash);
    let sha1 = Sha1Hash::parse(hash_text)
        .map_err(|_| malformed(uri, "the hash must be 40 lowercase hex characters"))?;

    let label = match label.filter(|label| !label.is_empty()) {
        Some(raw) => Some(
            percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| malformed(uri, "the label is not valid percent-encoded UTF-8"))?
                .into_owned(),
        ),
        None => None,
    };

    let mut manifest = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "manifest" {
            let parsed = Sha1Hash::parse(value)
                .map_err(|_| malformed(uri, "manifest= must be 40 lowercase hex characters"))?;
            manifest = Some(parsed);
        }
    }
    Ok(FileUri {
        sha1,
        label,
        manifest,
    })
}

fn parse_feed(uri: &str, rest: &str) -> Result<FeedUri, UriError> {
    let (id_text, subfeed) = match rest.split_once('/') {
        Some((id, subfeed)) => (id, Some(subfeed)),
        None => (rest, None),
    };
    let feed_id = NodeId::parse(id_text)
        .map_err(|_| malformed(uri, "the feed id must be 64 lowercase hex characters"))?;
    let subfeed = match subfeed.filter(|name| !name.is_empty()) {
        Some(raw) => Some(
            percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| malformed(uri, "the subfeed name is not valid percent-encoded UTF-8"))?
                .into_owned(),
        ),
        None => None,
    };
    Ok(FeedUri { feed_id, subfeed })
}

impl fmt::Display for FileUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha1://{}", self.sha1)?;
        if let Some(label) = &self.label {
            write!(f, "/{}", utf8_percent_encode(label, LABEL_ESCAPES))?;
        }
        if let Some(manifest) = &self.manifest {
            write!(f, "?manifest={manifest}")?;
        }
        Ok(())
    }
}

impl fmt::Display for FeedUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "feed://{}", self.feed_id)?;
        if let Some(subfeed) = &self.subfeed {
            write!(f, "/{}", utf8_percent_encode(subfeed, LABEL_ESCAPES))?;
        }
        Ok(())
    }
}

impl fmt::Display for KacheryUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KacheryUri::File(uri) => uri.fmt(f),
            KacheryUri::Feed(uri) => uri.fmt(f),
        }
    }
}

impl FromStr for KacheryUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, UriError> {
        KacheryUri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";
    const MANIFEST: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

    #[test]
    fn parses_the_forms_kachery_prints() {
        let uri =
            FileUri::parse(&format!("sha1://{HASH}/rec%20one.dat?manifest={MANIFEST}")).unwrap();
        assert_eq!(uri.sha1.to_string(), HASH);
        assert_eq!(uri.label.as_deref(), Some("rec one.dat"));
        assert_eq!(uri.manifest.unwrap().to_string(), MANIFEST);
        assert_eq!(
            uri.to_string(),
            format!("sha1://{HASH}/rec%20one.dat?manifest={MANIFEST}")
        );

        let bare = FileUri::parse(&format!("sha1://{HASH}")).unwrap();
        assert_eq!(bare.label, None);
        assert_eq!(bare.to_string(), format!("sha1://{HASH}"));
    }

    #[test]
    fn tolerates_original_quirks() {
        let with_ext = FileUri::parse(&format!("sha1://{HASH}.json")).unwrap();
        assert_eq!(with_ext.sha1.to_string(), HASH);
        let with_chunk_of =
            FileUri::parse(&format!("sha1://{HASH}?chunkOf={MANIFEST}~0~10")).unwrap();
        assert_eq!(with_chunk_of.manifest, None);
    }

    #[test]
    fn rejects_bad_uris_with_reasons() {
        assert!(matches!(
            KacheryUri::parse("http://x"),
            Err(UriError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            KacheryUri::parse(&format!("sha1dir://{HASH}")),
            Err(UriError::DirectoryUnsupported)
        ));
        assert!(matches!(
            KacheryUri::parse("sha1://xyz"),
            Err(UriError::Malformed { .. })
        ));
        assert!(matches!(
            KacheryUri::parse(&format!("sha1://{HASH}?manifest=nothex")),
            Err(UriError::Malformed { .. })
        ));
        assert!(matches!(
            KacheryUri::parse(""),
            Err(UriError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn feed_uris() {
        let id = "b".repeat(64);
        let uri = KacheryUri::parse(&format!("feed://{id}/main%2Flog")).unwrap();
        let KacheryUri::Feed(feed) = &uri else {
            panic!("expected a feed uri")
        };
        assert_eq!(feed.subfeed.as_deref(), Some("main/log"));
        assert_eq!(uri.to_string(), format!("feed://{id}/main%2Flog"));
    }
}
