//! Newline-delimited JSON over a byte stream: [`LineSplitter`] cuts arbitrary chunks into
//! complete lines, and [`ndjson_events`] turns a response body into a stream of values.
//!
//! A server may split a line across any number of chunks, or put many lines in one; the
//! splitter keeps the unfinished tail until its newline arrives.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Longest line accepted; a load event is a few hundred bytes.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Collects byte chunks and yields complete lines without their `\n` (or `\r\n`).
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: BytesMut,
}

impl LineSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// The next complete line, if a newline has arrived.
    pub fn next_line(&mut self) -> Option<Bytes> {
        let newline_idx = self.pending.iter().position(|&byte| byte == b'\n')?;
        let mut line = self.pending.split_to(newline_idx + 1);
        line.truncate(newline_idx);
        if line.last() == Some(&b'\r') {
            line.truncate(newline_idx - 1);
        }
        Some(line.freeze())
    }

    /// Bytes waiting for their newline.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// What is left once the input has ended: a last line without a newline, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = self.pending.split().freeze();
        (!rest.is_empty()).then_some(rest)
    }
}

/// Decodes each non-blank line of `body` as `T`. A decode error or a line longer than
/// [`MAX_LINE_BYTES`] ends the stream after yielding the error.
pub(crate) fn ndjson_events<T, S>(url: String, body: S) -> impl Stream<Item = Result<T, ApiError>>
where
    T: DeserializeOwned,
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin,
{
    struct State<S> {
        body: S,
        splitter: LineSplitter,
        ended: bool,
        url: String,
    }
    let state = State {
        body,
        splitter: LineSplitter::default(),
        ended: false,
        url,
    };

    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if state.ended {
                return None;
            }

            // A complete line (or the last, unterminated one at the end of the input).
            let line = match state.splitter.next_line() {
                Some(line) => Some(line),
                None => match state.body.next().await {
                    Some(Ok(chunk)) => {
                        state.splitter.push(chunk.chunk());
                        if state.splitter.pending_len() > MAX_LINE_BYTES {
                            state.ended = true;
                            let error = ApiError::UnexpectedResponse {
                                url: state.url.clone(),
                                status: 200,
                                body_snippet: format!("a line longer than {MAX_LINE_BYTES} bytes"),
                            };
                            return Some((Err(error), state));
                        }
                        continue;
                    }
                    Some(Err(error)) => {
                        state.ended = true;
                        return Some((Err(error), state));
                    }
                    None => {
                        state.ended = true;
                        state.splitter.finish()
                    }
                },
            };

            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event = serde_json::from_slice::<T>(&line).map_err(|source| ApiError::Decode {
                url: state.url.clone(),
                source,
            });
            if event.is_err() {
                state.ended = true;
            }
            return Some((event, state));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk);
            while let Some(line) = splitter.next_line() {
                lines.push(String::from_utf8(line.to_vec()).unwrap());
            }
        }
        lines.extend(
            splitter
                .finish()
                .map(|rest| String::from_utf8(rest.to_vec()).unwrap()),
        );
        lines
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        assert_eq!(
            split_all(&[b"{\"a\"", b":1}\n{\"b\":", b"2}\n"]),
            ["{\"a\":1}", "{\"b\":2}"]
        );
    }

    #[test]
    fn many_lines_in_one_chunk_and_crlf_endings_are_split() {
        assert_eq!(
            split_all(&[b"one\r\ntwo\nthree\n"]),
            ["one", "two", "three"]
        );
    }

    #[test]
    fn a_final_line_without_newline_is_kept() {
        assert_eq!(split_all(&[b"one\ntw", b"o"]), ["one", "two"]);
    }

    #[test]
    fn byte_by_byte_input_gives_the_same_lines() {
        let text = b"alpha\n\nbeta\r\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(split_all(&chunks), ["alpha", "", "beta"]);
    }
}
