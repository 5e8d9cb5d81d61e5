//! Recorded Binance WebSocket frames -> `MESSAGE_DTYPE` market data records.
//!
//! A recording is text, one frame a line: `<local receive time, ns> <raw JSON frame>`.
//! Combined-stream frames (`{"stream":"btcusdt@bookTicker","data":{...}}`) and the REST depth
//! snapshot line (`{"lastUpdateId":..,"bids":..,"asks":..}`) become one record each (see
//! `frame` for which JSON field goes where). Records carry the canonical symbol
//! ([`crate::symbol`]: `BTCUSDT` is `BTC-USDT`), worked out once per distinct raw name.
//!
//! ```text
//!  .gz files --(threads: read, gunzip, index)--> Recording, Recording, ...
//!            --Replay::merged (stable by receive time)--> order of (recording, frame)
//!            --Replay::decode_into (threads: one slice of records each)--> records
//! ```
//!
//! [`Recording::new`] splits a text into frames: where each frame's JSON is, its receive time
//! and its kind (from the stream name). [`Replay`] orders the frames of one or more recordings
//! and decodes them straight into their final record slots, so the records are written once,
//! already merged.

mod frame;
mod replay;

pub use replay::{read_recordings, RecordingFile, Replay, ReplayError};

use crate::error::{DecodeError, LineFault};
use crate::layout::{put_f64, put_i64, put_u64, MarketDataKind, RecordLayout, TEXT_SIZE};
use crate::symbol::{self, SymbolCache};
use std::borrow::Cow;

/// The most digits a receive time has (`i64::MAX` has 19).
const MAX_DIGITS: usize = 19;
/// The bytes of a bad line quoted in its error.
const EXCERPT: usize = 60;
/// A stream frame starts with this; its stream name follows.
const STREAM_PREFIX: &[u8] = br#"{"stream":""#;
/// Bytes of a stream name searched for its '@'.
const NAME_WINDOW: usize = 48;
/// The token after a stream name's '@' that gives a frame its kind.
const STREAM_TOKENS: [(&[u8], MarketDataKind); 4] = [
    (b"bookTicker\"", MarketDataKind::Quote),
    (b"trade\"", MarketDataKind::Trade),
    (b"depth\"", MarketDataKind::Depth),
    (b"depth@", MarketDataKind::Depth),
];

/// One frame of a recording: where its JSON is, when it was received, what kind it is.
#[derive(Debug, Clone, Copy)]
struct FrameRef {
    start: usize,
    end: usize,
    receive_ns: i64,
    kind: MarketDataKind,
}

/// A recording's text, split into frames, with the venue and symbol hint its records carry.
#[derive(Debug)]
pub struct Recording<'a> {
    text: Cow<'a, [u8]>,
    venue: [u8; TEXT_SIZE],
    /// The symbol field (canonical) of a snapshot that names none, or why there is none.
    hint: Result<[u8; TEXT_SIZE], LineFault>,
    frames: Vec<FrameRef>,
}

impl<'a> Recording<'a> {
    /// Split `text` into frames, checking every line's receive time and stream name.
    ///
    /// Blank lines are skipped (but counted in line numbers). `venue` is every record's venue;
    /// `symbol_hint` is the symbol of a REST snapshot line that names none (in the venue's
    /// spelling or the canonical one: records carry its canonical form).
    ///
    /// # Errors
    /// [`DecodeError::InvalidText`] for a venue that is not 1 to 16 ASCII characters;
    /// [`DecodeError::Line`] for the first line that is not `<receive_ns> <json>` or, when
    /// all are, for the first stream name that is not bookTicker, trade or depth.
    pub fn new(text: impl Into<Cow<'a, [u8]>>, venue: &str, symbol_hint: Option<&str>) -> Result<Self, DecodeError> {
        if venue.is_empty() || venue.len() > TEXT_SIZE || !venue.is_ascii() {
            return Err(DecodeError::InvalidText { field: "venue", value: venue.to_string() });
        }
        let mut venue_field = [0u8; TEXT_SIZE];
        venue_field[..venue.len()].copy_from_slice(venue.as_bytes());
        let hint = match symbol_hint {
            Some(name) if !name.is_empty() => symbol::field(name.as_bytes()),
            _ => Err(LineFault::SnapshotSymbol),
        };
        let text = text.into();
        let frames = index(&text)?;
        Ok(Self { text, venue: venue_field, hint, frames })
    }

    /// How many frames (records) the recording holds.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the recording holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The receive times of the frames, in line order.
    pub fn receive_times(&self) -> impl Iterator<Item = i64> + '_ {
        self.frames.iter().map(|f| f.receive_ns)
    }

    /// Decode the frames in line order into `out`, ids from 1 (single-threaded; see
    /// [`Replay`] for several recordings or threads).
    ///
    /// # Errors
    /// [`DecodeError::Line`] for the first frame that does not decode.
    ///
    /// # Panics
    /// If `out` is not `len() * layout.size` bytes or `layout` fails [`RecordLayout::check`].
    pub fn decode_into(&self, layout: &RecordLayout, out: &mut [u8]) -> Result<(), DecodeError> {
        assert_eq!(out.len(), self.len() * layout.size, "output size");
        assert_eq!(layout.check(), Ok(()));
        let template = layout.template(&self.venue);
        let mut symbols = SymbolCache::default();
        for ((frame, record), id) in self.frames.iter().zip(out.chunks_exact_mut(layout.size)).zip(1..) {
            self.write(frame, layout, &template, &mut symbols, record, id)
                .map_err(|fault| self.line_error(frame, fault))?;
        }
        Ok(())
    }

    /// Decode one frame into `record` (starting from the venue's `template`), its symbol
    /// through `symbols`.
    #[inline]
    fn write(
        &self,
        frame: &FrameRef,
        layout: &RecordLayout,
        template: &[u8],
        symbols: &mut SymbolCache,
        record: &mut [u8],
        id: u64,
    ) -> Result<(), LineFault> {
        let data = frame::decode(&self.text[frame.start..frame.end], frame.kind, symbols)?;
        let symbol = match data.symbol {
            Some(symbol) => symbol,
            None => self.hint.clone()?,
        };
        record.copy_from_slice(template);
        put_u64(record, layout.id, id);
        record[layout.kind] = data.kind as u8;
        record[layout.symbol..layout.symbol + TEXT_SIZE].copy_from_slice(&symbol);
        put_u64(record, layout.update_id, data.update_id);
        put_i64(record, layout.exchange_ns, data.exchange_ns);
        put_i64(record, layout.receive_ns, frame.receive_ns);
        put_f64(record, layout.bid, data.bid);
        put_f64(record, layout.ask, data.ask);
        put_f64(record, layout.bid_size, data.bid_size);
        put_f64(record, layout.ask_size, data.ask_size);
        put_f64(record, layout.last_price, data.last_price);
        put_f64(record, layout.last_size, data.last_size);
        Ok(())
    }

    /// The error of `frame`, with its line number (counted on this error path only).
    #[cold]
    fn line_error(&self, frame: &FrameRef, fault: LineFault) -> DecodeError {
        let line = memchr::memchr_iter(b'\n', &self.text[..frame.start]).count() as u64 + 1;
        DecodeError::Line { line, fault }
    }
}

/// Split `text` into frames (see [`Recording::new`]).
fn index(text: &[u8]) -> Result<Vec<FrameRef>, DecodeError> {
    let mut frames = Vec::with_capacity(text.len() / 256);
    let mut stream_error = None;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len()));
    for (end, line) in ends.zip(1u64..) {
        let (line_start, bytes) = (start, &text[start..end]);
        start = end + 1;
        if bytes.is_empty() {
            continue;
        }
        let (receive_ns, json_at) = receive_time(bytes).map_err(|fault| DecodeError::Line { line, fault })?;
        let kind = classify(&bytes[json_at..]).unwrap_or_else(|fault| {
            stream_error.get_or_insert(DecodeError::Line { line, fault });
            MarketDataKind::Snapshot
        });
        frames.push(FrameRef { start: line_start + json_at, end, receive_ns, kind });
    }
    match stream_error {
        Some(error) => Err(error),
        None => Ok(frames),
    }
}

/// A line's receive time and where its JSON starts: the line must start with 1 to 19 digits
/// and a space.
#[inline]
fn receive_time(line: &[u8]) -> Result<(i64, usize), LineFault> {
    let head = &line[..line.len().min(MAX_DIGITS + 1)];
    let Some(space) = memchr::memchr(b' ', head) else {
        return Err(LineFault::NotAFrame(line[..line.len().min(EXCERPT)].to_vec()));
    };
    let digits = &line[..space];
    let mut value = 0u64;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(LineFault::ReceiveTime(digits.to_vec()));
        }
        value = value * 10 + u64::from(b - b'0'); // at most 19 digits: no overflow
    }
    match i64::try_from(value) {
        Ok(ns) if !digits.is_empty() => Ok((ns, space + 1)),
        _ => Err(LineFault::ReceiveTime(digits.to_vec())),
    }
}

/// A frame's kind from the token after the '@' of its stream name; a frame that does not
/// start as a stream frame is a REST snapshot.
#[inline]
fn classify(json: &[u8]) -> Result<MarketDataKind, LineFault> {
    let Some(name) = json.strip_prefix(STREAM_PREFIX) else {
        return Ok(MarketDataKind::Snapshot);
    };
    let window = &name[..name.len().min(NAME_WINDOW)];
    let quote = memchr::memchr(b'"', window);
    if let Some(at) = memchr::memchr(b'@', window).filter(|&at| quote.is_none_or(|q| at < q)) {
        let token = &name[at + 1..];
        if let Some(&(_, kind)) = STREAM_TOKENS.iter().find(|(prefix, _)| token.starts_with(prefix)) {
            return Ok(kind);
        }
    }
    let stream = &window[..quote.unwrap_or(window.len())];
    Err(LineFault::Stream(String::from_utf8_lossy(stream).into_owned()))
}

#[cfg(test)]
mod tests;
