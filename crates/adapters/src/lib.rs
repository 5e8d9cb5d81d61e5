//! market-intel adapters: decode recorded venue frames into message records, in pure Rust.
//!
//! The records are `market_intel.records.MESSAGE_DTYPE` rows, written into a byte buffer
//! through a [`RecordLayout`] of field offsets that the Python binding reads from the dtype.
//! Decoding runs without Python: the binding releases the GIL around it. Records name their
//! instrument by the product's canonical symbol ([`symbol`]), not the venue's spelling.
//!
//! ```
//! use market_intel_adapters::binance::{Recording, Replay};
//! use market_intel_adapters::RecordLayout;
//!
//! // The offsets come from the record's numpy dtype; these are MESSAGE_DTYPE's.
//! let layout = RecordLayout {
//!     size: 192, id: 0, message_type: 40, priority: 41, kind: 42, symbol: 48, venue: 64,
//!     source: 176, bid: 80, ask: 88, bid_size: 96, ask_size: 104, last_price: 112,
//!     last_size: 120, volume: 128, update_id: 136, exchange_ns: 144, receive_ns: 152,
//! };
//! layout.check()?;
//! let text = br#"1002 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true}}
//! 1000 {"stream":"btcusdt@bookTicker","data":{"u":11,"s":"BTCUSDT","b":"61837.63","B":"3.78","a":"61837.64","A":"1.54"}}
//! "#;
//! let replay = Replay::merged(vec![Recording::new(&text[..], "binance", None)?]);
//! let mut records = vec![0u8; replay.len() * layout.size];
//! replay.decode_into(&layout, &mut records, 2)?;
//!
//! let field = |row: usize, at: usize| &records[row * layout.size + at..][..8];
//! assert_eq!(field(0, layout.receive_ns), 1000i64.to_le_bytes()); // merged by receive time
//! assert_eq!(field(0, layout.bid), 61837.63f64.to_le_bytes());
//! assert_eq!(field(1, layout.last_price), 61837.63f64.to_le_bytes());
//! assert_eq!(field(1, layout.id), 2u64.to_le_bytes());
//! assert_eq!(field(1, layout.symbol), *b"BTC-USDT"); // the canonical symbol (see `symbol`)
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod binance;
pub mod error;
pub mod gzip;
pub mod layout;
pub mod symbol;

mod json;
mod number;

pub use error::{DecodeError, FrameFault, LineFault, LoadError};
pub use layout::{LayoutError, MarketDataKind, RecordLayout};
