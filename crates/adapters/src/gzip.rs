//! Gunzip a whole file in memory (RFC 1952), as Python's `gzip.decompress` does.
//!
//! The deflate streams are inflated by zlib-rs (pure Rust, SIMD chosen at run time) straight
//! into one output buffer sized from the gzip trailer, so no byte is copied twice. Every
//! member's CRC-32 and length are checked; concatenated members are joined; empty input is
//! empty output.

use flate2::{Crc, Decompress, FlushDecompress, Status};
use std::io;

const MAGIC: [u8; 2] = [0x1f, 0x8b];
const DEFLATE: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xe0;
/// The most bytes one deflated byte can stand for.
const MAX_RATIO: usize = 1032;

/// The decompressed contents of gzip `data` (every member, joined).
///
/// # Errors
/// `InvalidData` for a header, stream or checksum that is wrong, `UnexpectedEof` for data
/// that ends inside a member.
pub fn gunzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint(data));
    let mut rest = data;
    while !rest.is_empty() {
        let body = &rest[header_len(rest)?..];
        let start = out.len();
        let used = inflate(body, &mut out)?;
        let trailer = body.get(used..used + 8).ok_or_else(|| eof("the gzip trailer is missing"))?;
        let mut crc = Crc::new();
        crc.update(&out[start..]);
        let (want_crc, want_len) = (le32(&trailer[..4]), le32(&trailer[4..]));
        if crc.sum() != want_crc {
            return Err(invalid(format!("CRC check failed: {:#010x} != {want_crc:#010x}", crc.sum())));
        }
        if (out.len() - start) as u32 != want_len {
            return Err(invalid(format!("incorrect length check: {} != {want_len}", out.len() - start)));
        }
        rest = &body[used + 8..];
    }
    Ok(out)
}

/// The output size the last member's trailer states (exact for one member under 4 GiB),
/// bounded by what the input can expand to.
fn size_hint(data: &[u8]) -> usize {
    let stated = data.len().checked_sub(4).map_or(0, |at| le32(&data[at..]) as usize);
    stated.min(data.len().saturating_mul(MAX_RATIO))
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The length of the member header at the start of `data`.
fn header_len(data: &[u8]) -> io::Result<usize> {
    let fixed = data.get(..10).ok_or_else(|| eof("the gzip header is cut short"))?;
    if fixed[..2] != MAGIC {
        return Err(invalid(format!("not a gzipped file ({:?})", &fixed[..2])));
    }
    if fixed[2] != DEFLATE {
        return Err(invalid(format!("unknown compression method {}", fixed[2])));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(invalid(format!("reserved gzip flags set ({flags:#04x})")));
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = data.get(at..at + 2).ok_or_else(|| eof("the gzip header is cut short"))?;
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let field = data.get(at..).unwrap_or_default();
            at += 1 + memchr::memchr(0, field).ok_or_else(|| eof("the gzip header is cut short"))?;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    if at > data.len() {
        return Err(eof("the gzip header is cut short"));
    }
    Ok(at)
}

/// Inflate the raw deflate stream at the start of `body`, appending to `out`; return how
/// many bytes of `body` it took.
fn inflate(body: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
    let mut inflater = Decompress::new(false);
    loop {
        if out.len() == out.capacity() {
            out.reserve((out.capacity() / 2).max(1 << 16));
        }
        let (taken, given) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(&body[taken as usize..], out, FlushDecompress::Finish)
            .map_err(|e| invalid(format!("invalid deflate stream: {e}")))?;
        match status {
            Status::StreamEnd => return Ok(inflater.total_in() as usize),
            Status::Ok | Status::BufError => {
                let stalled = inflater.total_in() == taken && inflater.total_out() == given;
                if stalled && out.len() < out.capacity() {
                    return Err(eof("compressed file ended before the end-of-stream marker was reached"));
                }
            }
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn eof(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::{Compression, GzBuilder};
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn text(lines: usize) -> Vec<u8> {
        (0..lines).flat_map(|i| format!("{i} {{\"n\":{}}}\n", i * 7).into_bytes()).collect()
    }

    #[test]
    fn members_are_inflated_checked_and_joined() {
        let (a, b) = (text(5000), text(3));
        let mut data = gzip(&a);
        let named =
            GzBuilder::new().filename("x.txt").comment("c").extra(vec![1, 2, 3]).write(Vec::new(), Compression::best());
        let mut named = named;
        named.write_all(&b).unwrap();
        data.extend(named.finish().unwrap());
        assert_eq!(gunzip(&data).unwrap(), [a, b].concat());
        assert_eq!(gunzip(b"").unwrap(), b"");
        assert_eq!(gunzip(&gzip(b"")).unwrap(), b"");
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let data = gzip(&text(2000));
        let kind = |d: &[u8]| gunzip(d).unwrap_err().kind();
        assert_eq!(kind(&data[..data.len() - 3]), io::ErrorKind::UnexpectedEof);
        assert_eq!(kind(&data[..data.len() / 2]), io::ErrorKind::UnexpectedEof);
        assert_eq!(kind(&data[..5]), io::ErrorKind::UnexpectedEof);
        assert_eq!(kind(b"plain text, not gzip"), io::ErrorKind::InvalidData);
        let mut bad_crc = data.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        assert!(gunzip(&bad_crc).unwrap_err().to_string().contains("CRC check failed"));
        let mut bad_len = data.clone();
        let at = bad_len.len() - 1;
        bad_len[at] ^= 1;
        assert!(gunzip(&bad_len).unwrap_err().to_string().contains("length"));
        let mut trailing = data.clone();
        trailing.extend([0, 0]);
        assert_eq!(kind(&trailing), io::ErrorKind::UnexpectedEof);
        for i in (10..data.len() - 8).step_by(97) {
            let mut flipped = data.clone();
            flipped[i] ^= 0x55;
            let _ = gunzip(&flipped); // any error, or data that the checksum catches
        }
    }
}
