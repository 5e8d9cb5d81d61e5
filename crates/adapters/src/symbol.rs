//! The product's one symbol naming scheme, the rules of
//! `market_intel.adapters.normalize.normalize_symbol`: `BASE-QUOTE` in upper case.
//!
//! | venue name       | canonical        | rule                                               |
//! |------------------|------------------|----------------------------------------------------|
//! | `btcusdt`        | `BTC-USDT`       | a known quote currency ends it (longest first)     |
//! | `BTCUSD_PERP`    | `BTC-USD-PERP`   | `_PERP`, `-PERP` or `PERP` ends a perpetual swap   |
//! | `BCHUSD_210924`  | `BCH-USD-210924` | `_YYMMDD` or `-YYMMDD` ends a dated future         |
//! | `XBT/USDT`       | `BTC-USDT`       | one separator (`-`, `/`, `_`, `:`); aliases folded |
//! | `BTCDOMUSDT`     | `BTCDOM-USDT`    | the base is what the quote leaves                  |
//! | `DEFIINDEX`      | `DEFIINDEX`      | not a pair: kept, upper-cased                      |
//!
//! A record's symbol field holds the canonical name; `SymbolCache` keeps the field of each
//! distinct raw name a decoder meets, so a frame's symbol costs a lookup and a 16-byte copy.
//!
//! ```
//! use market_intel_adapters::symbol::canonical;
//!
//! assert_eq!(canonical("btcusdt").as_deref(), Some("BTC-USDT"));
//! assert_eq!(canonical("ETHUSD_PERP").as_deref(), Some("ETH-USD-PERP"));
//! assert_eq!(canonical("ETHUSD_240927").as_deref(), Some("ETH-USD-240927"));
//! assert_eq!(canonical("xbt/eur").as_deref(), Some("BTC-EUR"));
//! assert_eq!(canonical(" BTC USDT"), None); // not an instrument name
//! ```

use crate::error::LineFault;
use crate::layout::TEXT_SIZE;

/// Quote currencies, longest first so that `BTCUSDT` splits as BTC/USDT, not BTCUSD/T
/// (normalize.py `_QUOTES`).
const QUOTES: [&str; 20] = [
    "FDUSD", "USDT", "USDC", "BUSD", "USDP", "DAI", "USD", "EUR", "GBP", "JPY", "AUD", "CAD", "CHF", "TRY", "BRL",
    "KRW", "BTC", "ETH", "BNB", "XBT",
];
/// Venue spellings of assets and the asset they are (normalize.py `_ASSET_ALIASES`).
const ASSET_ALIASES: [(&str, &str); 5] =
    [("XBT", "BTC"), ("XDG", "DOGE"), ("ZUSD", "USD"), ("ZEUR", "EUR"), ("XXBT", "BTC")];
/// The endings of a perpetual swap's name, tried in this order.
const PERPETUAL: [&str; 3] = ["_PERP", "-PERP", "PERP"];
/// The separators of a spelled-out pair, tried in this order.
const SEPARATORS: [char; 4] = ['-', '/', '_', ':'];
/// Distinct raw names a [`SymbolCache`] keeps.
const CACHE_CAPACITY: usize = 64;

/// The canonical symbol of a venue's instrument name, as `normalize_symbol` gives it.
///
/// `None` when the name, without surrounding whitespace and upper-cased, is empty or is not
/// printable ASCII without spaces (`normalize_symbol` refuses the empty and the unprintable;
/// a non-ASCII name has no place in a record either).
pub fn canonical(name: &str) -> Option<String> {
    let upper = upper(name);
    is_printable_ascii(&upper).then(|| pair(&upper))
}

/// A symbol's record field: its canonical name, 1 to [`TEXT_SIZE`] ASCII bytes, NUL padded.
///
/// # Errors
/// [`LineFault::Symbol`] with the upper-cased name when it is not an instrument name, or
/// with the canonical name when that does not fit the field.
pub(crate) fn field(name: &[u8]) -> Result<[u8; TEXT_SIZE], LineFault> {
    let upper = upper(&String::from_utf8_lossy(name));
    if !is_printable_ascii(&upper) {
        return Err(LineFault::Symbol(upper));
    }
    let symbol = pair(&upper);
    if symbol.len() > TEXT_SIZE {
        return Err(LineFault::Symbol(symbol));
    }
    let mut field = [0u8; TEXT_SIZE];
    field[..symbol.len()].copy_from_slice(symbol.as_bytes());
    Ok(field)
}

/// The record fields of the raw names a decoder has met, up to [`CACHE_CAPACITY`] of them
/// (further names replace the oldest).
#[derive(Debug, Default)]
pub(crate) struct SymbolCache {
    entries: Vec<Entry>,
    /// The entry the next new name replaces, once the cache is full.
    next: usize,
}

/// A raw name of 1 to [`TEXT_SIZE`] bytes (NUL padded, with its length, as one key) and its
/// record field.
#[derive(Debug, Clone, Copy)]
struct Entry {
    raw: u128,
    len: usize,
    field: [u8; TEXT_SIZE],
}

impl SymbolCache {
    /// The record field of `raw`, the bytes of a symbol string as the frame holds them
    /// (escapes, if any, already decoded); see [`field`].
    #[inline]
    pub(crate) fn field(&mut self, raw: &[u8]) -> Result<[u8; TEXT_SIZE], LineFault> {
        if raw.is_empty() || raw.len() > TEXT_SIZE {
            return field(raw);
        }
        let mut padded = [0u8; TEXT_SIZE];
        padded[..raw.len()].copy_from_slice(raw);
        let key = u128::from_le_bytes(padded);
        match self.entries.iter().find(|e| e.raw == key && e.len == raw.len()) {
            Some(entry) => Ok(entry.field),
            None => self.insert(key, raw),
        }
    }

    /// Work out the field of a raw name not met before, and keep it.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, key: u128, raw: &[u8]) -> Result<[u8; TEXT_SIZE], LineFault> {
        let entry = Entry { raw: key, len: raw.len(), field: field(raw)? };
        if self.entries.len() < CACHE_CAPACITY {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % CACHE_CAPACITY;
        }
        Ok(entry.field)
    }
}

/// The name without surrounding whitespace (what Python's `str.isspace` calls whitespace),
/// upper-cased as Python's `str.upper` does.
fn upper(name: &str) -> String {
    name.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)).to_uppercase()
}

/// Whether a name is non-empty printable ASCII without spaces.
fn is_printable_ascii(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The canonical form of an upper-cased name of printable ASCII without spaces, step by step
/// as `normalize_symbol` goes: the expiry, then the perpetual ending, then a separator, then
/// the quote currencies.
fn pair(name: &str) -> String {
    let (mut body, mut suffix) = (name, String::new());
    if let Some((rest, expiry)) = expiry(name) {
        (body, suffix) = (rest, format!("-{expiry}"));
    }
    if let Some(rest) = PERPETUAL.iter().find_map(|end| body.strip_suffix(end).filter(|rest| !rest.is_empty())) {
        (body, suffix) = (rest, "-PERP".to_string());
    }
    if let Some((separator, at)) = SEPARATORS.iter().find_map(|&s| body.find(s).map(|at| (s, at))) {
        let (base, quote) = (&body[..at], &body[at + 1..]);
        if base.is_empty() || quote.is_empty() || quote.contains(separator) {
            return name.to_string();
        }
        return format!("{}-{}{suffix}", asset(base), asset(quote));
    }
    match QUOTES.iter().find(|quote| body.len() > quote.len() && body.ends_with(*quote)) {
        Some(quote) => format!("{}-{}{suffix}", asset(&body[..body.len() - quote.len()]), asset(quote)),
        None => format!("{body}{suffix}"),
    }
}

/// A dated future's name and expiry: `<name>_YYMMDD` or `<name>-YYMMDD`, the name not empty.
fn expiry(name: &str) -> Option<(&str, &str)> {
    let split = name.len().checked_sub(7).filter(|&at| at > 0)?;
    let (rest, dated) = name.split_at(split);
    let digits = &dated[1..];
    (matches!(dated.as_bytes()[0], b'_' | b'-') && digits.bytes().all(|b| b.is_ascii_digit())).then_some((rest, digits))
}

/// The asset a venue's code names.
fn asset(code: &str) -> &str {
    ASSET_ALIASES.iter().find(|(alias, _)| *alias == code).map_or(code, |(_, asset)| asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(field: [u8; TEXT_SIZE]) -> String {
        String::from_utf8(field.iter().copied().take_while(|&b| b != 0).collect()).unwrap()
    }

    #[test]
    fn binance_names_split_at_the_longest_known_quote() {
        for (name, want) in [
            ("BTCUSDT", "BTC-USDT"),
            ("btcusdt", "BTC-USDT"),
            ("ETHBTC", "ETH-BTC"),
            ("BNBFDUSD", "BNB-FDUSD"),
            ("BTCUSDC", "BTC-USDC"),
            ("USDCUSDT", "USDC-USDT"),
            ("BTCDOMUSDT", "BTCDOM-USDT"),
            ("1000SHIBUSDT", "1000SHIB-USDT"),
            ("BTCTRY", "BTC-TRY"),
            ("XBTEUR", "BTC-EUR"),
            // TUSD is not a quote: bases ending in T (DOT, XBT) keep their T
            ("XBTUSD", "BTC-USD"),
            ("DOTUSD_PERP", "DOT-USD-PERP"),
            ("ETHXBT", "ETH-BTC"),
            ("XDGUSDT", "DOGE-USDT"),
            ("PAXGDAI", "PAXG-DAI"),
        ] {
            assert_eq!(canonical(name).as_deref(), Some(want), "{name}");
        }
    }

    #[test]
    fn perpetuals_and_dated_futures_keep_their_ending() {
        for (name, want) in [
            ("BTCUSD_PERP", "BTC-USD-PERP"),
            ("ethusd_perp", "ETH-USD-PERP"),
            ("BTCUSDTPERP", "BTC-USDT-PERP"),
            ("BTC-USD-PERP", "BTC-USD-PERP"),
            ("BCHUSD_210924", "BCH-USD-210924"),
            ("ETHUSDT_240927", "ETH-USDT-240927"),
            ("BTC-USD-210924", "BTC-USD-210924"),
            ("BTCUSD_21092", "BTCUSD-21092"), // five digits: not an expiry but a pair's separator
            ("X_210924", "X-210924"),
            ("PERP", "PERP"),
            ("_PERP", "_PERP"),
            // as normalize_symbol: a perpetual ending after an expiry replaces it
            ("BTCPERP_210924", "BTC-PERP"),
        ] {
            assert_eq!(canonical(name).as_deref(), Some(want), "{name}");
        }
    }

    #[test]
    fn spelled_out_pairs_take_one_separator() {
        for (name, want) in [
            ("BTC-USDT", "BTC-USDT"),
            ("xbt/eur", "BTC-EUR"),
            ("XXBT_ZUSD", "BTC-USD"),
            ("ETH:USD", "ETH-USD"),
            ("A_B-C", "A_B-C"),
            ("A-B-C", "A-B-C"),
            ("-USDT", "-USDT"),
            ("BTC/", "BTC/"),
            ("A/B_C", "A-B_C"),
        ] {
            assert_eq!(canonical(name).as_deref(), Some(want), "{name}");
        }
    }

    #[test]
    fn names_that_are_not_pairs_are_kept_upper_cased() {
        for (name, want) in [
            ("defiindex", "DEFIINDEX"),
            ("USDT", "USDT"),
            ("BTC", "BTC"),
            ("ABC123", "ABC123"),
            ("  btcusdt\t", "BTC-USDT"),
            ("straße", "STRASSE"),
            ("\u{1c}btc", "BTC"),
        ] {
            assert_eq!(canonical(name).as_deref(), Some(want), "{name}");
        }
        for name in ["", "  ", "BTC USDT", "BTC\u{7}", "é", "\u{0}"] {
            assert_eq!(canonical(name), None, "{name:?}");
        }
    }

    #[test]
    fn a_field_holds_the_canonical_name_if_it_fits() {
        assert_eq!(text(field(b"btcusd_perp").unwrap()), "BTC-USD-PERP");
        assert_eq!(text(field(b"1000000MOGUSDT").unwrap()), "1000000MOG-USDT");
        assert_eq!(field(b"ABCDEFGHIJKLUSDT"), Err(LineFault::Symbol("ABCDEFGHIJKL-USDT".into())));
        assert_eq!(field(b" "), Err(LineFault::Symbol(String::new())));
        assert_eq!(field("é".as_bytes()), Err(LineFault::Symbol("É".into())));
        assert_eq!(field(b"A B"), Err(LineFault::Symbol("A B".into())));
    }

    #[test]
    fn the_cache_gives_what_the_rules_give_for_every_name() {
        let mut cache = SymbolCache::default();
        let names: Vec<String> = (0..3 * CACHE_CAPACITY).map(|i| format!("C{i}USDT")).collect();
        for round in 0..3 {
            for name in names.iter().chain([&"btcusdt".to_string(), &"BTCUSDT".to_string()]) {
                assert_eq!(cache.field(name.as_bytes()), field(name.as_bytes()), "{name} in round {round}");
            }
        }
        assert_eq!(cache.entries.len(), CACHE_CAPACITY);
        assert_eq!(text(cache.field(b"BTC").unwrap()), "BTC");
        assert_eq!(cache.field(b"BTC\0"), Err(LineFault::Symbol("BTC\0".into())), "a NUL is not padding");
        assert_eq!(cache.field(b""), Err(LineFault::Symbol(String::new())));
        assert_eq!(cache.field(b"A B"), Err(LineFault::Symbol("A B".into())));
        assert_eq!(text(cache.field(b"    ethusd_perp    ").unwrap()), "ETH-USD-PERP", "too long for a key");
    }
}
