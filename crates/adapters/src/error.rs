//! Errors of the adapters: what was wrong, on which line, and what was expected.
//!
//! ```text
//! LoadError                      a recording could not be loaded
//! ├── Io                         reading or gunzipping the file failed
//! └── Decode(DecodeError)        its text did not decode
//! DecodeError
//! ├── InvalidText                a venue that does not fit its record field
//! └── Line { line, fault }       a malformed line (LineFault says how)
//! ```
//!
//! Values in messages are quoted the way Python prints them (`b'12x4'`, `'btcusdt@aggTrade'`),
//! since the messages end up in Python exceptions.

use crate::layout::{MarketDataKind, TEXT_SIZE};
use std::fmt::Write as _;
use std::path::PathBuf;

/// A line of a recording or an argument that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A text argument (the venue) is empty, not ASCII or longer than its record field.
    #[error("{field}: {} must be 1 to {TEXT_SIZE} ASCII characters", py_str(value))]
    InvalidText {
        /// The argument's name.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A line is malformed.
    #[error("line {line}: {fault}")]
    Line {
        /// The 1-based line number (blank lines count).
        line: u64,
        /// What is wrong with it.
        fault: LineFault,
    },
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineFault {
    /// No space within the first 20 bytes: not `<receive_ns> <json>` (an excerpt of the line).
    #[error("{}; expected '<receive_ns> <json>'", py_bytes(.0))]
    NotAFrame(Vec<u8>),
    /// The receive time is not a non-negative 64-bit integer.
    #[error("receive time {}; expected nanoseconds since the epoch", py_bytes(.0))]
    ReceiveTime(Vec<u8>),
    /// The stream name is not `<symbol>@bookTicker`, `@trade` or `@depth...`.
    #[error("stream {}; expected <symbol>@bookTicker, @trade or @depth", py_str(.0))]
    Stream(String),
    /// The frame's JSON does not hold the fields its kind needs.
    #[error("{kind} frame: {fault}; expected a Binance {} frame", kind.name().to_ascii_lowercase())]
    Frame {
        /// The kind its stream name (or its lack of one) gave the frame.
        kind: MarketDataKind,
        /// What is wrong with it.
        fault: FrameFault,
    },
    /// The symbol is not an instrument name (upper-cased, it is empty or not printable ASCII
    /// without spaces), or its canonical form (the one given) is longer than its record field.
    #[error("symbol: {} must be 1 to {TEXT_SIZE} printable ASCII characters, no spaces, in canonical form", py_str(.0))]
    Symbol(String),
    /// A REST snapshot names no symbol and the recording has no symbol hint.
    #[error("snapshot symbol: the REST snapshot names no symbol; pass symbol_hint")]
    SnapshotSymbol,
}

/// What is wrong with a frame's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameFault {
    /// The JSON ends before its value does.
    #[error("Input data was truncated")]
    Truncated,
    /// The JSON is not valid (`at` is a byte offset in the frame).
    #[error("JSON is malformed: {what} (byte {at})")]
    Malformed {
        /// What was found.
        what: &'static str,
        /// Where, from the start of the frame.
        at: usize,
    },
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    /// A field has the wrong JSON type or text.
    #[error("field `{field}` is not {expected}")]
    Type {
        /// The field (`$` for the frame itself).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A number is out of the range of its record field.
    #[error("field `{field}` is out of range for {expected}")]
    Range {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A side of a depth update or snapshot is not a list of `[price, quantity]` pairs.
    #[error("depth levels of `{0}` are not [price, quantity] decimal pairs")]
    Levels(&'static str),
}

/// A recording that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or gunzipping the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The recording.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A line of the recording did not decode.
    #[error("{}: {source}", path.display())]
    Decode {
        /// The recording.
        path: PathBuf,
        /// The failure.
        source: DecodeError,
    },
}

/// `bytes` as Python's `repr(bytes)` prints it.
pub(crate) fn py_bytes(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { '"' } else { '\'' };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if char::from(b) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push(quote);
    out
}

/// `text` as Python's `repr(str)` prints it.
pub(crate) fn py_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c == quote => {
                out.push('\\');
                out.push(quote);
            }
            _ if (c as u32) < 0x20 || ('\u{7f}'..='\u{a0}').contains(&c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            _ if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            _ => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_as_python_prints_them() {
        assert_eq!(py_bytes(b"12x4"), "b'12x4'");
        assert_eq!(py_bytes(b"a'b\\\n\xff"), "b\"a'b\\\\\\n\\xff\"");
        assert_eq!(py_bytes(b"'\""), "b'\\'\"'");
        assert_eq!(py_str("btcusdt@aggTrade"), "'btcusdt@aggTrade'");
        assert_eq!(py_str("it's\t\u{1}é"), "\"it's\\t\\x01é\"");
    }

    #[test]
    fn messages_name_the_line_and_what_was_expected() {
        let err = DecodeError::Line {
            line: 4,
            fault: LineFault::Frame { kind: MarketDataKind::Trade, fault: FrameFault::Missing("t") },
        };
        assert_eq!(err.to_string(), "line 4: TRADE frame: missing required field `t`; expected a Binance trade frame");
        let err = DecodeError::InvalidText { field: "venue", value: "binance-coinm-perp".into() };
        assert_eq!(err.to_string(), "venue: 'binance-coinm-perp' must be 1 to 16 ASCII characters");
    }
}
