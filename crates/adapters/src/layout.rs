//! Where a message record keeps the fields a market data adapter writes.
//!
//! The record is `market_intel.records.MESSAGE_DTYPE`; its layout belongs to Python, so this
//! crate hard-codes no offset: a binding reads them from the numpy dtype into a
//! [`RecordLayout`], which [`RecordLayout::check`] validates before anything is written.
//! Multi-byte fields are little-endian; text fields are [`TEXT_SIZE`] bytes, NUL padded.

/// Bytes of the `symbol`, `venue` and `source` fields.
pub const TEXT_SIZE: usize = 16;
/// `MessageType.MARKET_DATA`: the `type` of every record an adapter writes.
pub const MARKET_DATA: u8 = 1;
/// `Priority.NORMAL`: the `priority` of every record an adapter writes.
pub const NORMAL: u8 = 2;
/// The `source` of replayed records.
pub const REPLAY_SOURCE: &[u8] = b"replay";

/// What a market data record carries: `market_intel.enums.MarketDataKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MarketDataKind {
    /// Top of book: bid, ask and their sizes.
    Quote = 1,
    /// A public trade: last price and size.
    Trade = 2,
    /// A book update: the best levels it touches.
    Depth = 3,
    /// A full book (REST snapshot): its best levels.
    Snapshot = 4,
}

impl MarketDataKind {
    /// The Python enum member's name (`QUOTE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Quote => "QUOTE",
            Self::Trade => "TRADE",
            Self::Depth => "DEPTH",
            Self::Snapshot => "SNAPSHOT",
        }
    }
}

impl std::fmt::Display for MarketDataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Byte offsets of the fields an adapter writes, and the record size.
///
/// Every other byte of a record an adapter writes is 0 (`created_ns` and `published_ns` are
/// left for the engine to stamp; `flags` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLayout {
    /// Bytes per record.
    pub size: usize,
    /// `id`: u64.
    pub id: usize,
    /// `type`: u8.
    pub message_type: usize,
    /// `priority`: u8.
    pub priority: usize,
    /// `kind`: u8.
    pub kind: usize,
    /// `symbol`: [`TEXT_SIZE`] bytes.
    pub symbol: usize,
    /// `venue`: [`TEXT_SIZE`] bytes.
    pub venue: usize,
    /// `source`: [`TEXT_SIZE`] bytes.
    pub source: usize,
    /// `bid`: f64.
    pub bid: usize,
    /// `ask`: f64.
    pub ask: usize,
    /// `bid_size`: f64.
    pub bid_size: usize,
    /// `ask_size`: f64.
    pub ask_size: usize,
    /// `last_price`: f64.
    pub last_price: usize,
    /// `last_size`: f64.
    pub last_size: usize,
    /// `volume`: f64.
    pub volume: usize,
    /// `update_id`: u64.
    pub update_id: usize,
    /// `exchange_ns`: i64.
    pub exchange_ns: usize,
    /// `receive_ns`: i64.
    pub receive_ns: usize,
}

/// A layout whose fields do not fit its record or overlap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record layout: field `{field}` at bytes {start}..{end} {problem}")]
pub struct LayoutError {
    /// The field.
    pub field: &'static str,
    /// Its first byte.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// How it is wrong.
    pub problem: String,
}

impl RecordLayout {
    /// Every field as (name, offset, bytes).
    pub fn fields(&self) -> [(&'static str, usize, usize); 17] {
        [
            ("id", self.id, 8),
            ("type", self.message_type, 1),
            ("priority", self.priority, 1),
            ("kind", self.kind, 1),
            ("symbol", self.symbol, TEXT_SIZE),
            ("venue", self.venue, TEXT_SIZE),
            ("source", self.source, TEXT_SIZE),
            ("bid", self.bid, 8),
            ("ask", self.ask, 8),
            ("bid_size", self.bid_size, 8),
            ("ask_size", self.ask_size, 8),
            ("last_price", self.last_price, 8),
            ("last_size", self.last_size, 8),
            ("volume", self.volume, 8),
            ("update_id", self.update_id, 8),
            ("exchange_ns", self.exchange_ns, 8),
            ("receive_ns", self.receive_ns, 8),
        ]
    }

    /// Check that every field lies inside the record and that no two fields overlap.
    pub fn check(&self) -> Result<(), LayoutError> {
        let mut fields = self.fields();
        for &(field, start, len) in &fields {
            if start.checked_add(len).is_none_or(|end| end > self.size) {
                let problem = format!("does not fit a record of {} bytes", self.size);
                return Err(LayoutError { field, start, end: start.saturating_add(len), problem });
            }
        }
        fields.sort_unstable_by_key(|&(_, start, _)| start);
        for pair in fields.windows(2) {
            let ((a, a_start, a_len), (b, b_start, b_len)) = (pair[0], pair[1]);
            if a_start + a_len > b_start {
                let problem = format!("overlaps `{a}` at bytes {a_start}..{}", a_start + a_len);
                return Err(LayoutError { field: b, start: b_start, end: b_start + b_len, problem });
            }
        }
        Ok(())
    }

    /// The record every frame of `venue` starts from: type, priority, venue and source set,
    /// float fields NaN, everything else 0.
    pub(crate) fn template(&self, venue: &[u8; TEXT_SIZE]) -> Vec<u8> {
        let mut record = vec![0u8; self.size];
        record[self.message_type] = MARKET_DATA;
        record[self.priority] = NORMAL;
        record[self.venue..self.venue + TEXT_SIZE].copy_from_slice(venue);
        record[self.source..self.source + REPLAY_SOURCE.len()].copy_from_slice(REPLAY_SOURCE);
        for at in [self.bid, self.ask, self.bid_size, self.ask_size, self.last_price, self.last_size, self.volume] {
            put_f64(&mut record, at, f64::NAN);
        }
        record
    }
}

/// Write `value` little-endian at `at`.
#[inline]
pub(crate) fn put_u64(record: &mut [u8], at: usize, value: u64) {
    record[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Write `value` little-endian at `at`.
#[inline]
pub(crate) fn put_i64(record: &mut [u8], at: usize, value: i64) {
    record[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Write `value` little-endian at `at` (its exact bits: NaN stays the NaN it is).
#[inline]
pub(crate) fn put_f64(record: &mut [u8], at: usize, value: f64) {
    record[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Read the i64 at `at`.
#[cfg(test)]
pub(crate) fn get_i64(record: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&record[at..at + 8]);
    i64::from_le_bytes(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `MESSAGE_DTYPE`'s offsets, for tests.
    pub(crate) fn message_layout() -> RecordLayout {
        RecordLayout {
            size: 192,
            id: 0,
            message_type: 40,
            priority: 41,
            kind: 42,
            symbol: 48,
            venue: 64,
            source: 176,
            bid: 80,
            ask: 88,
            bid_size: 96,
            ask_size: 104,
            last_price: 112,
            last_size: 120,
            volume: 128,
            update_id: 136,
            exchange_ns: 144,
            receive_ns: 152,
        }
    }

    #[test]
    fn the_message_layout_checks() {
        assert_eq!(message_layout().check(), Ok(()));
    }

    #[test]
    fn fields_outside_the_record_or_overlapping_are_rejected() {
        let err = RecordLayout { receive_ns: 188, ..message_layout() }.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "record layout: field `receive_ns` at bytes 188..196 does not fit a record of 192 bytes"
        );
        let err = RecordLayout { volume: 84, ..message_layout() }.check().unwrap_err();
        assert_eq!(err.field, "volume");
        assert!(err.problem.contains("`bid`"), "{err}");
        let err = RecordLayout { id: usize::MAX, ..message_layout() }.check().unwrap_err();
        assert_eq!(err.field, "id");
    }

    #[test]
    fn the_template_sets_the_constant_fields() {
        let layout = message_layout();
        let mut venue = [0u8; TEXT_SIZE];
        venue[..7].copy_from_slice(b"binance");
        let t = layout.template(&venue);
        assert_eq!((t[40], t[41], t[42]), (MARKET_DATA, NORMAL, 0));
        assert_eq!(&t[64..80], &venue);
        assert_eq!(&t[176..182], b"replay");
        assert!(f64::from_le_bytes(t[80..88].try_into().unwrap()).is_nan());
        assert_eq!(&t[136..160], &[0u8; 24]);
    }
}
