//! Byte and bit ranges of strings: GETRANGE, SUBSTR, SETRANGE, GETBIT,
//! SETBIT, BITCOUNT, BITPOS, BITOP.
//!
//! A string stays one register: SETRANGE and SETBIT rewrite the whole value
//! under the coordinator's read-modify-write, so concurrent writes through
//! different nodes become siblings with one deterministic winner, as SET's.

use super::strings::{not_string, read_string, string_too_long, write};
use super::{CmdResult, canonical_i64, is, kv_error, parse_i64, syntax_error};
use crate::kv::{Change, Kv};
use crate::resp::reply::Reply;
use crate::resp::session::ServerState;
use bytes::Bytes;

/// Runs a byte- or bit-range command.
pub async fn run<K: Kv>(kv: &K, server: &ServerState, name: &str, args: &[Bytes]) -> CmdResult {
    let key = args[1].clone();
    match name {
        "getrange" | "substr" => {
            let (start, end) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
            let data = read_string(kv, key)
                .await?
                .map(|v| v.data)
                .unwrap_or_default();
            Ok(Reply::Bulk(match clamp(start, end, data.len()) {
                Some((s, e)) => data.slice(s..=e),
                None => Bytes::new(),
            }))
        }
        "setrange" => setrange(kv, server, key, &args[2], args[3].clone()).await,
        "getbit" => {
            let offset = bit_offset(server, &args[2])?;
            let data = read_string(kv, key)
                .await?
                .map(|v| v.data)
                .unwrap_or_default();
            Ok(Reply::Int(bit_at(&data, offset) as i64))
        }
        "setbit" => setbit(kv, server, key, &args[2], &args[3]).await,
        "bitcount" => bitcount(kv, key, &args[2..]).await,
        "bitpos" => bitpos(kv, key, &args[2..]).await,
        "bitop" => bitop(kv, args).await,
        _ => Err(Reply::err(format!("'{name}' is not a bitmap command"))),
    }
}

/// Redis's clamp of an inclusive `[start, end]` range (negative counts
/// from the end) over `len` units; `None` when it selects nothing.
fn clamp(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).ok()?;
    let from_end = |i: i64| if i < 0 { i.saturating_add(len) } else { i };
    let start = from_end(start).max(0);
    let end = from_end(end).max(0).min(len - 1);
    (len > 0 && start <= end).then_some((start as usize, end as usize))
}

/// A bit offset argument: at most the last bit of the longest string.
fn bit_offset(server: &ServerState, arg: &[u8]) -> Result<u64, Reply> {
    canonical_i64(arg)
        .and_then(|o| u64::try_from(o).ok())
        .filter(|o| (o >> 3) < server.proto_max_bulk_len() as u64)
        .ok_or_else(|| Reply::err("bit offset is not an integer or out of range"))
}

/// Bit `offset` of `data`, counting from the most significant bit of the
/// first byte; 0 past the end.
fn bit_at(data: &[u8], offset: u64) -> bool {
    usize::try_from(offset >> 3)
        .ok()
        .and_then(|byte| data.get(byte))
        .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

async fn setrange<K: Kv>(
    kv: &K,
    server: &ServerState,
    key: Bytes,
    offset: &[u8],
    value: Bytes,
) -> CmdResult {
    let offset =
        usize::try_from(parse_i64(offset)?).map_err(|_| Reply::err("offset is out of range"))?;
    let max = server.proto_max_bulk_len();
    let len = kv
        .modify(key, move |cur, _| {
            if let Some(e) = not_string(&cur) {
                return (Change::Keep, Err(e));
            }
            let current = cur.as_ref().map_or(0, |v| v.data.len());
            if value.is_empty() {
                return (Change::Keep, Ok(current));
            }
            if offset.saturating_add(value.len()) > max {
                return (Change::Keep, Err(string_too_long()));
            }
            let (mut data, ttl) = match cur {
                Some(v) => (v.data.to_vec(), v.expires_at_ms),
                None => (Vec::new(), None),
            };
            let end = offset + value.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset..end].copy_from_slice(&value);
            let len = data.len();
            (write(Bytes::from(data), ttl), Ok(len))
        })
        .await
        .map_err(kv_error)??;
    Ok(Reply::Int(len as i64))
}

async fn setbit<K: Kv>(
    kv: &K,
    server: &ServerState,
    key: Bytes,
    offset: &[u8],
    bit: &[u8],
) -> CmdResult {
    let offset = bit_offset(server, offset)?;
    let on = match canonical_i64(bit) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(Reply::err("bit is not an integer or out of range")),
    };
    let byte = (offset >> 3) as usize;
    let mask = 0x80u8 >> (offset & 7);
    let old = kv
        .modify(key, move |cur, _| {
            if let Some(e) = not_string(&cur) {
                return (Change::Keep, Err(e));
            }
            let (mut data, ttl) = match cur {
                Some(v) => (v.data.to_vec(), v.expires_at_ms),
                None => (Vec::new(), None),
            };
            if data.len() <= byte {
                data.resize(byte + 1, 0);
            }
            let was = data[byte] & mask != 0;
            if on {
                data[byte] |= mask;
            } else {
                data[byte] &= !mask;
            }
            (write(Bytes::from(data), ttl), Ok(was))
        })
        .await
        .map_err(kv_error)??;
    Ok(Reply::Int(old as i64))
}

/// Whether a range is counted in bytes or in bits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Byte,
    Bit,
}

fn parse_unit(arg: Option<&Bytes>) -> Result<Unit, Reply> {
    match arg {
        None => Ok(Unit::Byte),
        Some(a) if is(a, "BYTE") => Ok(Unit::Byte),
        Some(a) if is(a, "BIT") => Ok(Unit::Bit),
        Some(_) => Err(syntax_error()),
    }
}

/// An inclusive bit range of `data` from a BYTE or BIT range.
fn bit_range(start: i64, end: i64, unit: Unit, len: usize) -> Option<(u64, u64)> {
    match unit {
        Unit::Byte => clamp(start, end, len).map(|(s, e)| (s as u64 * 8, e as u64 * 8 + 7)),
        Unit::Bit => clamp(start, end, len.checked_mul(8)?).map(|(s, e)| (s as u64, e as u64)),
    }
}

fn count_bits(data: &[u8], from: u64, to: u64) -> u64 {
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    let mut count: u64 = data[first..=last]
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    // Bits of the first and last bytes outside the range.
    count -= u64::from((data[first] & !(0xffu8 >> (from & 7))).count_ones());
    count -= u64::from((data[last] & (0x7fu8 >> (to & 7))).count_ones());
    count
}

async fn bitcount<K: Kv>(kv: &K, key: Bytes, opts: &[Bytes]) -> CmdResult {
    let range = match opts {
        [] => None,
        [start, end] | [start, end, _] => {
            Some((parse_i64(start)?, parse_i64(end)?, parse_unit(opts.get(2))?))
        }
        _ => return Err(syntax_error()),
    };
    let Some(value) = read_string(kv, key).await? else {
        return Ok(Reply::Int(0));
    };
    let data = value.data;
    let (start, end, unit) = range.unwrap_or((0, -1, Unit::Byte));
    let count = bit_range(start, end, unit, data.len()).map_or(0, |(s, e)| count_bits(&data, s, e));
    Ok(Reply::Int(count as i64))
}

/// The first bit equal to `bit` in `[from, to]`.
fn find_bit(data: &[u8], bit: bool, from: u64, to: u64) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xff };
    let mut pos = from;
    while pos <= to {
        let byte = data[(pos >> 3) as usize];
        if pos & 7 == 0 && byte == skip && pos + 7 <= to {
            pos += 8;
            continue;
        }
        if (byte & (0x80 >> (pos & 7)) != 0) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

async fn bitpos<K: Kv>(kv: &K, key: Bytes, opts: &[Bytes]) -> CmdResult {
    let bit = match canonical_i64(&opts[0]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(Reply::err("The bit argument must be 1 or 0.")),
    };
    let (start, end, unit, end_given) = match &opts[1..] {
        [] => (0, -1, Unit::Byte, false),
        [start] => (parse_i64(start)?, -1, Unit::Byte, false),
        [start, end] => (parse_i64(start)?, parse_i64(end)?, Unit::Byte, true),
        [start, end, unit] => (
            parse_i64(start)?,
            parse_i64(end)?,
            parse_unit(Some(unit))?,
            true,
        ),
        _ => return Err(syntax_error()),
    };
    let Some(value) = read_string(kv, key).await? else {
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let data = value.data;
    let Some((from, to)) = bit_range(start, end, unit, data.len()) else {
        return Ok(Reply::Int(-1));
    };
    Ok(Reply::Int(match find_bit(&data, bit, from, to) {
        Some(pos) => pos as i64,
        // Looking for a clear bit past an open-ended range: the string
        // continues with zeros.
        None if !bit && !end_given => to as i64 + 1,
        None => -1,
    }))
}

async fn bitop<K: Kv>(kv: &K, args: &[Bytes]) -> CmdResult {
    let op = &args[1];
    let (dest, sources) = (args[2].clone(), &args[3..]);
    // NOT is AND's fold with its one source inverted afterwards.
    let (combine, invert): (fn(u8, u8) -> u8, bool) = if is(op, "AND") {
        (|a, b| a & b, false)
    } else if is(op, "OR") {
        (|a, b| a | b, false)
    } else if is(op, "XOR") {
        (|a, b| a ^ b, false)
    } else if is(op, "NOT") {
        (|a, _| a, true)
    } else {
        return Err(syntax_error());
    };
    if invert && sources.len() != 1 {
        return Err(Reply::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let mut values = Vec::with_capacity(sources.len());
    for key in sources {
        values.push(
            read_string(kv, key.clone())
                .await?
                .map(|v| v.data)
                .unwrap_or_default(),
        );
    }
    let len = values.iter().map(Bytes::len).max().unwrap_or(0);
    let byte_of = |v: &Bytes, i: usize| v.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| {
            let mut bytes = values.iter().map(|v| byte_of(v, i));
            let first = bytes.next().unwrap_or(0);
            let folded = bytes.fold(first, combine);
            if invert { !folded } else { folded }
        })
        .collect();
    if result.is_empty() {
        super::rename::remove(kv, dest).await?;
        return Ok(Reply::Int(0));
    }
    kv.overwrite(dest, write(Bytes::from(result), None))
        .await
        .map_err(kv_error)?;
    Ok(Reply::Int(len as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_as_in_redis() {
        assert_eq!(clamp(0, -1, 5), Some((0, 4)));
        assert_eq!(clamp(-3, -1, 5), Some((2, 4)));
        assert_eq!(clamp(3, 100, 5), Some((3, 4)));
        assert_eq!(clamp(-100, 1, 5), Some((0, 1)));
        assert_eq!(clamp(4, 2, 5), None);
        assert_eq!(clamp(-1, -5, 5), None);
        assert_eq!(clamp(0, -1, 0), None);
        assert_eq!(clamp(i64::MIN, i64::MAX, 3), Some((0, 2)));
    }

    #[test]
    fn bits_are_counted_and_found_within_their_range() {
        let data = [0b1111_0000u8, 0b0000_1111, 0xff];
        assert_eq!(count_bits(&data, 0, 23), 16);
        assert_eq!(count_bits(&data, 2, 13), 4);
        assert_eq!(count_bits(&data, 4, 11), 0);
        assert_eq!(find_bit(&data, true, 4, 23), Some(12));
        assert_eq!(find_bit(&data, false, 0, 23), Some(4));
        assert_eq!(find_bit(&data, false, 16, 23), None);
        assert!(bit_at(&data, 0) && !bit_at(&data, 4) && !bit_at(&data, 999));
    }
}
